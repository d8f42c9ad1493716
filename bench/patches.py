"""Candidate optimisations of dcim's SNMP path, applied by monkeypatching inside the bench worker.

Each change is modelled here and measured against the unpatched code in the same run
(`snmp_cost.py --engines fast,fast+noraw`); a patch keeps dcim's results identical (the worker
checks every poll still yields all 36 values). The earlier candidates that measured a clear
win (learned GETBULK repetitions, draining the socket into one buffer) are now in dcim itself.

    noraw      decode_snmp skips the per-point raw copy (only `dcim poll` shows it)
    together   a poll sends its GET and the first request of every walk group at once (one
               wakeup can then read several answers) instead of one after the other
    uvloop     the worker runs on uvloop's event loop instead of asyncio's (pip install uvloop;
               chosen before the loop starts, see loop_patches)
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any

import dcim.decode
import dcim.drivers.poller
import dcim.drivers.snmp as snmp


def _noraw() -> None:
    def no_raw(src: object, data: object) -> object:
        return None

    dcim.decode._snmp_raw = no_raw  # type: ignore[assignment]


def _together() -> None:
    async def fetch(client: snmp.SnmpDriver, device: Any, plan: snmp.SnmpPlan,
                    max_repetitions: int, data: Any = None) -> Any:
        data = data or dcim.decode.SnmpData()
        if plan.scalars and plan.columns:
            scalars, tables = await asyncio.gather(
                client.get(device, plan.scalars), client.walk(device, plan.columns,
                                                              max_repetitions))
            data.scalars.update(scalars)
            data.tables.update(tables)
            return data
        return await original(client, device, plan, max_repetitions, data)

    async def walk(self: snmp.SnmpDriver, device: Any, columns: Sequence[str],
                   max_repetitions: int) -> dict[str, dict[str, Any]]:
        keys = [(device.host, device.port, c) for c in columns]
        if device.auth.version == 1 or any(k not in self._rows for k in keys):
            return await original_walk(self, device, columns, max_repetitions)
        groups: dict[int, list[str]] = {}
        for key, column in zip(keys, columns, strict=True):
            groups.setdefault(min(self._rows[key] + 1, max_repetitions), []).append(column)
        tables: dict[str, dict[str, Any]] = {}
        for part in await asyncio.gather(*(self._walk_group(device, g, max_repetitions, reps)
                                           for reps, g in groups.items())):
            tables.update(part)
        for key, column in zip(keys, columns, strict=True):
            self._rows[key] = len(tables[column])
        return tables

    original, original_walk = snmp.fetch, snmp.SnmpDriver.walk
    dcim.drivers.poller.fetch = fetch  # type: ignore[attr-defined]
    snmp.SnmpDriver.walk = walk  # type: ignore[method-assign]


def loop_patches(argv: Sequence[str]) -> list[str]:
    """Patches in a worker's --patches=... argument that choose the event loop itself, so
    they must act before asyncio.run (the others are applied inside the running loop)."""
    names = [a.split("=", 1)[1] for a in argv if a.startswith("--patches=")]
    return [n for arg in names for n in arg.split(",") if n in LOOP_PATCHES]


LOOP_PATCHES = {"uvloop"}
PATCHES: dict[str, Callable[[], None]] = {"noraw": _noraw, "together": _together,
                                          "uvloop": lambda: None}


def apply(names: Sequence[str]) -> None:
    """Apply the named patches (in the order given)."""
    for name in names:
        if name not in PATCHES:
            raise SystemExit(f"unknown patch {name!r}; known: {', '.join(PATCHES)}")
        PATCHES[name]()
