"""Candidate optimisations of dcim's SNMP path, applied by monkeypatching inside the bench worker.

Each change is modelled here and measured against the unpatched code in the same run
(`snmp_cost.py --engines fast,fast+noraw`); a patch keeps dcim's results identical (the worker
checks every poll still yields all 36 values). The earlier candidates that measured a clear
win (learned GETBULK repetitions, draining the socket into one buffer) are now in dcim itself.

    noraw      decode_snmp skips the per-point raw copy (only `dcim poll` shows it)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import dcim.decode


def _noraw() -> None:
    def no_raw(src: object, data: object) -> object:
        return None

    dcim.decode._snmp_raw = no_raw  # type: ignore[assignment]


PATCHES: dict[str, Callable[[], None]] = {"noraw": _noraw}


def apply(names: Sequence[str]) -> None:
    """Apply the named patches (in the order given)."""
    for name in names:
        if name not in PATCHES:
            raise SystemExit(f"unknown patch {name!r}; known: {', '.join(PATCHES)}")
        PATCHES[name]()
