"""Candidate optimisations of dcim's SNMP path, applied by monkeypatching inside the bench worker.

bench/ may not edit dcim/, so each change recommended in bench/README.md is modelled here and
measured against the unpatched code in the same run (`snmp_cost.py --engines fast,fast+walk`).
Each patch keeps dcim's results identical; the worker checks every poll still yields all 36
values. Patches:

    noraw      decode_snmp skips the per-point raw copy (only `dcim poll` shows it)
    walk       the walk loop reads each column's strided slice and stops at its end, instead of
               testing every varbind of every repetition
    learnreps  remember how many rows each column had on this device; next time, GETBULK
               columns of equal length together with max-repetitions = rows + 1, so the agent
               does not send (and dcim does not decode) repetitions past the end of short tables
    rcvsize    receive with a 64 KiB buffer instead of asyncio's 256 KiB max_size: glibc serves
               256 KiB with mmap, so every datagram cost mmap + mremap + munmap
    drain      read the client socket with our own reader: recvfrom_into one preallocated
               buffer, draining every queued datagram per wakeup (fewer event-loop turns)
    callimport FastClient._call without its function-level `from ... import` (run per request)
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Sequence

import dcim.decode
from dcim.decode import Missing, RawValue
from dcim.drivers import snmp
from dcim.drivers.snmp import SnmpCollector, SnmpDeviceError, _oid_tuple, _StatusError
from dcim.site import DeviceSpec

Tables = dict[str, dict[str, RawValue]]


def _noraw() -> None:
    def no_raw(src: object, data: object) -> object:
        return None

    dcim.decode._snmp_raw = no_raw  # type: ignore[assignment]


async def _walk_columns(client: SnmpCollector, device: DeviceSpec, columns: Sequence[str],
                        max_repetitions: int, first_reps: int | None = None) -> Tables:
    """SnmpCollector.walk with a strided per-column loop (same results, fewer tests)."""
    assert device.auth is not None
    tables: Tables = {c: {} for c in columns}
    prefixes = {c: _oid_tuple(c) for c in columns}
    cursor = dict(prefixes)
    active = list(columns)
    reps_override = first_reps
    while active:
        asked = [".".join(map(str, cursor[c])) for c in active]
        try:
            if device.auth.version == 1:
                binds = await client._next(device, asked)
            else:
                reps = max(1, min(max_repetitions, 60 // len(active)))
                if reps_override is not None:
                    reps, reps_override = max(1, min(reps_override, 60 // len(active))), None
                binds = await client._bulk(device, asked, reps)
        except _StatusError as exc:
            if exc.status == "noSuchName":
                break
            raise SnmpDeviceError("protocol", f"{device.host}: walk failed: {exc.status}") from None
        if not binds:
            break
        n = len(active)
        finished = set()
        for j, column in enumerate(active):
            prefix = prefixes[column]
            plen = len(prefix)
            rows = tables[column]
            last = cursor[column]
            # repetitions of column j sit at j, j+n, j+2n ...; the first one out of the
            # column ends it, so the rest of its slice is never looked at
            for oid_t, raw in binds[j::n]:
                if (oid_t[:plen] != prefix or oid_t <= last
                        or (isinstance(raw, Missing) and raw.reason == "endOfMibView")):
                    finished.add(column)
                    break
                rows[".".join(map(str, oid_t[plen:]))] = raw
                last = oid_t
            cursor[column] = last
        active = [c for c in active if c not in finished]
    return tables


def _walk() -> None:
    async def walk(self: SnmpCollector, device: DeviceSpec, columns: Sequence[str],
                   max_repetitions: int) -> Tables:
        return await _walk_columns(self, device, columns, max_repetitions)

    SnmpCollector.walk = walk  # type: ignore[method-assign]


def _learnreps() -> None:
    # (host, port, column) -> rows seen on the last walk; a hint only: a table that grew is
    # still walked to its end, just with one more request
    learned: dict[tuple[str, int, str], int] = {}

    async def walk(self: SnmpCollector, device: DeviceSpec, columns: Sequence[str],
                   max_repetitions: int) -> Tables:
        assert device.auth is not None
        keys = [(device.host, device.port, c) for c in columns]
        if device.auth.version == 1 or any(k not in learned for k in keys):
            tables = await _walk_columns(self, device, columns, max_repetitions)
        else:
            groups: dict[int, list[str]] = {}
            for key, column in zip(keys, columns, strict=True):
                # one repetition past the last row tells the walk the column has ended
                groups.setdefault(min(learned[key] + 1, max_repetitions), []).append(column)
            tables = {}
            for reps, group in groups.items():
                tables.update(await _walk_columns(self, device, group, max_repetitions, reps))
        for key, column in zip(keys, columns, strict=True):
            learned[key] = len(tables[column])
        return tables

    SnmpCollector.walk = walk  # type: ignore[method-assign]


def _rcvsize() -> None:
    from dcim.drivers import snmpfast

    opened = snmpfast.SnmpClient._transport

    async def transport(self: snmpfast.SnmpClient, family: int) -> asyncio.DatagramTransport:
        t = await opened(self, family)
        # UDP payloads stop at 65,507 bytes; below glibc's 128 KiB mmap threshold
        t.max_size = 65535  # type: ignore[attr-defined]
        return t

    snmpfast.SnmpClient._transport = transport  # type: ignore[method-assign]


def _drain() -> None:
    from dcim.drivers import snmpfast

    opened = snmpfast.SnmpClient._transport

    async def transport(self: snmpfast.SnmpClient, family: int) -> asyncio.DatagramTransport:
        fresh = family not in self._transports
        t = await opened(self, family)
        if fresh:
            sock: socket.socket = t._sock  # type: ignore[attr-defined]  # the real socket
            loop = asyncio.get_running_loop()
            # the private twins skip the "fd belongs to a transport" guard; dcim itself would
            # own the socket (add_reader + sock.sendto) instead of a datagram transport
            loop._remove_reader(sock.fileno())  # type: ignore[attr-defined]
            buf = bytearray(65535)
            view = memoryview(buf)
            on_datagram = self._on_datagram

            def readable() -> None:
                for _ in range(64):  # bounded, so one busy socket cannot starve the loop
                    try:
                        n, addr = sock.recvfrom_into(buf)
                    except (BlockingIOError, InterruptedError):
                        return
                    except OSError:
                        continue  # ICMP errors: the request's timer handles it
                    on_datagram(bytes(view[:n]), addr)

            loop._add_reader(sock.fileno(), readable)  # type: ignore[attr-defined]
        return t

    snmpfast.SnmpClient._transport = transport  # type: ignore[method-assign]


def _callimport() -> None:
    from dcim.drivers.snmp import FastClient, VarBinds, _wire_raw
    from dcim.drivers.snmpfast import SnmpError, SnmpErrorStatus, SnmpTimeout

    async def _call(self: FastClient, device: DeviceSpec, method: str, oids: Sequence[str],
                    *extra: int) -> VarBinds:
        auth = device.auth
        assert auth is not None
        call = getattr(self._client, method)
        try:
            async with self._slots:
                binds = await call(device.host, device.port, auth.community, auth.version - 1,
                                   oids, *extra, timeout=device.timeout, retries=device.retries)
        except SnmpTimeout:
            raise SnmpDeviceError("timeout", f"{device.host}:{device.port}: no SNMP response "
                                  f"within {device.timeout:g}s x {device.retries + 1}") from None
        except SnmpErrorStatus as exc:
            raise _StatusError(exc.name, exc.index) from None
        except (SnmpError, OSError) as exc:
            raise SnmpDeviceError("protocol", f"{device.host}:{device.port}: {exc}") from None
        return [(oid, _wire_raw(value)) for oid, value in binds]

    FastClient._call = _call  # type: ignore[method-assign]


PATCHES: dict[str, Callable[[], None]] = {
    "noraw": _noraw, "walk": _walk, "learnreps": _learnreps, "rcvsize": _rcvsize,
    "drain": _drain, "callimport": _callimport,
}


def apply(names: Sequence[str]) -> None:
    """Apply the named patches (in the order given)."""
    for name in names:
        if name not in PATCHES:
            raise SystemExit(f"unknown patch {name!r}; known: {', '.join(PATCHES)}")
        PATCHES[name]()


assert snmp.SnmpCollector is SnmpCollector  # the class the Poller's clients inherit from
