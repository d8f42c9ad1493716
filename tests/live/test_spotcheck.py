"""`dcim pue` against real agents: PDUs in snmpsim, the utility meter in a pymodbus server.

The fixture values are realistic per device but not one consistent site, so the PUE is large;
what is checked is that it is exactly facility / IT from what the agents serve, and that
killing one PDU's agent withholds it (exit 3) and names the device.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.modbus_server import serve_modbus_fixtures
from support.profiles import SNMP_FIXTURES, golden_of, shipped_registry
from support.servers import SnmpsimServer

REGISTRY = shipped_registry()
RACKS = {"r1": {"A": "apc-rpdu2", "B": "raritan-px"}, "r2": {"A": "servertech-sentry4"},
         "r3": {"A": "eaton-epdu"}}
KILLED = "vertiv-v5"  # served by its own agent, which the test kills


async def _pue(config: Path, *args: str) -> tuple[int, dict[str, Any]]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "dcim", "pue", "--config", str(config), "--json", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, json.loads(out) if out.strip() else {"stderr": err.decode()}


def _site(tmp_path: Path, agent: SnmpsimServer, lone: SnmpsimServer, modbus_port: int) -> Path:
    devices: list[dict[str, Any]] = []
    credentials = {}
    for rack, feeds in RACKS.items():
        for feed, profile in feeds.items():
            devices.append({"id": f"{rack}-{profile}", "profile": profile, "host": "127.0.0.1",
                            "port": agent.port, "rack": rack, "feed": feed,
                            "credentials": profile})
            credentials[profile] = {"snmp_version": "2c", "community": profile}
    devices.append({"id": f"r3-{KILLED}", "profile": KILLED, "host": "127.0.0.1",
                    "port": lone.port, "rack": "r3", "feed": "B", "credentials": KILLED})
    credentials[KILLED] = {"snmp_version": "2c", "community": KILLED}
    devices.append({"id": "main-1", "profile": "schneider-pm5500", "host": "127.0.0.1",
                    "port": modbus_port, "unit": 1})
    config = {"site": {"name": "lab", "rack_max_kw": 190}, "credentials": credentials,
              "polling": {"timeout": "500ms", "retries": 0},
              "racks": [{"id": r} for r in RACKS], "devices": devices,
              "pue": {"facility": ["main-1"], "it": "racks"}}
    path = tmp_path / "site.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def _power(profile: str) -> float:
    return float(golden_of(REGISTRY[profile])["points"]["power_w"])


async def test_pue_against_real_agents_and_a_killed_pdu(
        tmp_path: Path, snmpsim_factory: Callable[..., SnmpsimServer]) -> None:
    agent = snmpsim_factory(SNMP_FIXTURES)
    lone_dir = tmp_path / "lone"
    lone_dir.mkdir()
    shutil.copy(SNMP_FIXTURES / f"{KILLED}.snmprec", lone_dir)
    lone = snmpsim_factory(lone_dir)
    server, modbus_port = await serve_modbus_fixtures(["schneider-pm5500"])
    try:
        config = _site(tmp_path, agent, lone, modbus_port)
        it_w = sum(_power(p) for feeds in RACKS.values() for p in feeds.values()) + _power(KILLED)
        facility_w = _power("schneider-pm5500")

        code, out = await _pue(config)
        assert code == 0, out
        assert out["status"] == "ok" and out["coverage"] == 1.0 and out["missing"] == []
        assert out["it_w"] == pytest.approx(it_w)
        assert out["facility_w"] == pytest.approx(facility_w)
        assert out["pue"] == pytest.approx(facility_w / it_w, abs=1e-4)

        code, _ = await _pue(config, "--warn", str(out["pue"] - 1), "--crit", str(out["pue"] + 1))
        assert code == 1
        code, _ = await _pue(config, "--crit", str(out["pue"] - 1))
        assert code == 2

        lone.stop()
        code, out = await _pue(config)
        assert code == 3
        assert out["pue"] is None and out["status"] == "degraded"
        assert out["missing"] == [f"r3-{KILLED}"]
        assert out["coverage"] == pytest.approx(5 / 6, abs=1e-4)  # 5 PDUs + meter, one PDU gone
    finally:
        await server.shutdown()
