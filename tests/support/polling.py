"""One device polled through the real Poller, with a chosen SNMP engine (fast or pysnmp)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from dcim.drivers.poller import Poller
from dcim.readings import PollResult
from dcim.site import DeviceSpec, SnmpAuth


def device(profile: Any, port: int, auth: SnmpAuth | None = None, unit: int = 1,
           timeout: float = 2.0) -> DeviceSpec:
    """A device on 127.0.0.1:port read with `profile` (a PDU gets a 190 kW rack cap)."""
    return DeviceSpec(id=profile.name, profile=profile, host="127.0.0.1", port=port, unit=unit,
                      interval=10.0, timeout=timeout, retries=1, max_age=30.0, auth=auth,
                      rack_cap_w=190_000.0 if profile.kind == "pdu" else None)


def poll(spec: DeviceSpec, engine: str, monkeypatch: pytest.MonkeyPatch) -> PollResult:
    """One poll by a fresh Poller with DCIM_SNMP_ENGINE=engine (fast or pysnmp)."""
    monkeypatch.setenv("DCIM_SNMP_ENGINE", engine)

    async def go() -> PollResult:
        poller = Poller()
        try:
            return await poller.poll(spec)
        finally:
            await poller.close()

    return asyncio.run(go())
