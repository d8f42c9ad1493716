"""One entry point for polling any device: picks the driver, fetches, decodes, times it."""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
import os
import time
from collections.abc import Callable

from dcim.decode import Decoded, decode_modbus, decode_snmp
from dcim.drivers.modbus import ModbusClient, ModbusDeviceError
from dcim.drivers.redfish import RedfishDriver
from dcim.drivers.snmp import (
    FastClient,
    PysnmpClient,
    SnmpDeviceError,
    SnmpDriver,
    fallback_plan,
    fetch,
    primary_plan,
)
from dcim.errors import ConfigError
from dcim.profile import (
    ModbusProfile,
    ProfileRegistry,
    RedfishProfile,
    SnmpProfile,
    sys_object_id_matches,
)
from dcim.readings import PollResult, failed
from dcim.reasons import ErrorKind
from dcim.redfish.client import RedfishError
from dcim.site import DeviceSpec
from dcim.snmp.client import ClientStats

SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"

log = logging.getLogger("dcim.poller")


@functools.lru_cache(maxsize=64)
def profile_hint(sys_object_id: str) -> str:
    """Which known profiles fit a device that announced this sysObjectID (for the error)."""
    try:
        names = ProfileRegistry.load().for_sys_object_id(sys_object_id)
    except ConfigError:
        names = []
    if not names:
        return "no shipped profile is made for it: choose or write a matching profile"
    return f"use profile {' or '.join(names)}"


class Poller:
    """Polls devices over SNMP, Modbus or Redfish; one instance (one SNMP engine) per process."""

    def __init__(self, max_in_flight: int = 64):
        self._max_in_flight = max_in_flight
        self._pysnmp: PysnmpClient | None = None
        self._fast: FastClient | None = None
        # pysnmp is the reference implementation; DCIM_SNMP_ENGINE=pysnmp uses it for v1/v2c too.
        self._fast_ok = os.environ.get("DCIM_SNMP_ENGINE", "fast") != "pysnmp"
        self._modbus = ModbusClient()
        self._redfish = RedfishDriver()
        self._verified: set[tuple[str, int]] = set()
        # Called once per device when a `profile: auto` device that did not answer at load
        # answers sysObjectID: the daemon reloads its config, which identifies it.
        self.on_identified: Callable[[str], None] | None = None
        # The unidentified spec each device answered for: a reload builds a new spec, so a
        # device down again at that reload is asked again; a refused reload is not retried.
        self._answered: dict[str, DeviceSpec] = {}

    def _snmp_client(self, device: DeviceSpec) -> SnmpDriver:
        """dcim's own SNMP stack for v1, v2c and v3 SHA/AES; pysnmp for MD5 or DES users."""
        assert device.auth is not None
        if self._fast_ok and FastClient.handles(device.auth):
            if self._fast is None:
                self._fast = FastClient(self._max_in_flight)
            return self._fast
        if self._pysnmp is None:
            self._pysnmp = PysnmpClient(self._max_in_flight)
        return self._pysnmp

    def snmp_stats(self) -> ClientStats | None:
        """A copy of dcim's own SNMP client's counters (None until it polled a device)."""
        return None if self._fast is None else dataclasses.replace(self._fast.client.stats)

    async def close(self) -> None:
        """Close sockets and connections."""
        await self._modbus.close()
        await self._redfish.close()
        for client in (self._fast, self._pysnmp):
            if client is not None:
                client.close()

    async def poll(self, device: DeviceSpec, only: frozenset[str] | None = None,
                   deadline: float | None = None) -> PollResult:
        """Poll one device (optionally only some points) within a deadline; never raises."""
        started = time.monotonic()
        budget = deadline or device.timeout * (device.retries + 1) * 4
        try:
            async with asyncio.timeout(budget):
                if device.unidentified is not None:
                    return await self._identify(device, started)
                if isinstance(device.profile, SnmpProfile):
                    result = await self._poll_snmp(device, device.profile, only)
                elif isinstance(device.profile, RedfishProfile):
                    result = await self._redfish.poll(device, device.profile, only)
                else:
                    result = await self._poll_modbus(device, device.profile, only)
        except (SnmpDeviceError, ModbusDeviceError, RedfishError) as exc:
            return failed(device.id, time.time(), time.monotonic() - started, exc.kind, str(exc))
        except TimeoutError:
            return failed(device.id, time.time(), time.monotonic() - started,
                          ErrorKind.DEADLINE,
                          f"poll not complete within {budget:g}s: the device answers too "
                          "slowly (or too much) to be read within its interval")
        except OSError as exc:
            return failed(device.id, time.time(), time.monotonic() - started,
                          ErrorKind.NETWORK, str(exc) or type(exc).__name__)
        return PollResult(device=device.id, time=time.time(), duration=time.monotonic() - started,
                          values=result.values, errors=result.errors, raw=result.raw)

    async def _poll_snmp(self, device: DeviceSpec, profile: SnmpProfile,
                         only: frozenset[str] | None) -> Decoded:
        client = self._snmp_client(device)
        if profile.sys_object_id and (device.host, device.port) not in self._verified:
            await self._verify_model(client, device, profile)
        data = await fetch(client, device, primary_plan(profile, only), profile.max_repetitions)
        decoded = decode_snmp(profile, data, device.rack_cap_w, only)
        retry = [profile.points[name] for name in decoded.errors if profile.points[name].fallback]
        if retry:
            data = await fetch(client, device, fallback_plan(retry), profile.max_repetitions, data)
            decoded = decode_snmp(profile, data, device.rack_cap_w, only)
        return decoded

    async def _identify(self, device: DeviceSpec, started: float) -> PollResult:
        """A `profile: auto` device not identified yet: ask sysObjectID again; down either way
        (it has no profile to read with until the config is reloaded)."""
        if self._answered.get(device.id) is not device:
            try:
                got = await self._snmp_client(device).get(device, [SYS_OBJECT_ID])
            except (SnmpDeviceError, OSError, TimeoutError) as exc:
                return failed(device.id, time.time(), time.monotonic() - started,
                              ErrorKind.UNIDENTIFIED, "profile not identified yet: no answer to "
                              f"sysObjectID ({str(exc) or type(exc).__name__})")
            self._answered[device.id] = device
            log.info("%s answered sysObjectID %s: reloading the config to identify it",
                     device.id, got.get(SYS_OBJECT_ID))
            if self.on_identified is not None:
                self.on_identified(device.id)
        return failed(device.id, time.time(), time.monotonic() - started, ErrorKind.UNIDENTIFIED,
                      "profile not identified yet: it answered sysObjectID, the config reload "
                      "that identifies it has not taken it (see the log)")

    async def _verify_model(self, client: SnmpDriver, device: DeviceSpec,
                            profile: SnmpProfile) -> None:
        """Refuse to read a device with a profile made for another model (wrong numbers)."""
        raw = (await client.get(device, [SYS_OBJECT_ID])).get(SYS_OBJECT_ID)
        if isinstance(raw, str):
            oid = raw.lstrip(".")
            if not sys_object_id_matches(oid, profile.sys_object_id):
                raise SnmpDeviceError(
                    ErrorKind.PROFILE_MISMATCH,
                    f"sysObjectID {oid} is not a {profile.name} device "
                    f"(expects {', '.join(profile.sys_object_id)}); {profile_hint(oid)}",
                )
        # An agent without sysObjectID cannot be checked; read it as configured.
        self._verified.add((device.host, device.port))

    async def _poll_modbus(self, device: DeviceSpec, profile: ModbusProfile,
                           only: frozenset[str] | None) -> Decoded:
        points = {n: p for n, p in profile.points.items() if only is None or n in only}
        data = await self._modbus.fetch(device, points.values(), profile.max_gap, profile.max_block)
        decoded = decode_modbus(profile, data, device.rack_cap_w, only)
        retry = [s for name in decoded.errors for s in points[name].fallback]
        if retry:
            data = await self._modbus.fetch(device, retry, profile.max_gap, profile.max_block, data)
            decoded = decode_modbus(profile, data, device.rack_cap_w, only)
        return decoded

