"""The interval ledger: 15-minute energy per rack, tenant and site, in state.db.

Fed from the same device increments as the energy totals (compute/energy.py), each cut at
interval boundaries (compute/tenants.py). Rows are written as deltas in the same transaction
as the device energy states (EnergyStore.save), so after a crash or restart an increment is
either in both or in neither: nothing is counted twice, nothing lost. A save that fails keeps
the deltas in memory for the next one.

`devices` is how many devices measure the bucket (the most seen in the interval); with
`covered_s` it gives the interval's coverage, so an interval where a device was down, or dcim
was not running, is incomplete, never filled in. `dcim report` reads the file while the daemon
writes (WAL).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from pathlib import Path

from dcim.compute.billing import Recorded
from dcim.compute.energy import Increment
from dcim.compute.tenants import (
    INTERVAL_S,
    TENANT_PREFIX,
    UNASSIGNED,
    Cell,
    expected_devices,
    interval_cells,
    interval_of,
)
from dcim.site import Site

SCHEMA = """
CREATE TABLE IF NOT EXISTS interval_energy (
    start INTEGER NOT NULL, bucket TEXT NOT NULL, joules REAL NOT NULL DEFAULT 0,
    covered_s REAL NOT NULL DEFAULT 0, gap_j REAL NOT NULL DEFAULT 0,
    devices INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (start, bucket));
"""
_UPSERT = """
INSERT INTO interval_energy (start, bucket, joules, covered_s, gap_j, devices)
VALUES (?, ?, ?, ?, ?, ?)
ON CONFLICT (start, bucket) DO UPDATE SET
    joules = joules + excluded.joules, covered_s = covered_s + excluded.covered_s,
    gap_j = gap_j + excluded.gap_j, devices = MAX(devices, excluded.devices)
"""
# The buckets whose IT energy shares out the live facility energy (compute/tenants.py).
_IT_BUCKETS = ("it", UNASSIGNED)


class IntervalLedger:
    """Pending interval deltas, and the IT energy of the current and previous interval."""

    def __init__(self) -> None:
        self._cells: dict[tuple[int, str], Cell] = {}
        self._devices: dict[tuple[int, str], int] = {}
        self._marked: tuple[int, int] | None = None
        self._it: dict[int, dict[str, float]] = {}

    def load(self, db: sqlite3.Connection, now: float) -> None:
        """Read back the IT energy of the current and previous interval (after a restart)."""
        current = interval_of(now)
        for start, bucket, joules in db.execute(
                "SELECT start, bucket, joules FROM interval_energy WHERE start >= ?",
                (current - INTERVAL_S,)):
            if _shares_out(bucket):
                self._it.setdefault(start, {})[bucket] = joules

    def add(self, site: Site, increment: Increment, start: float | None, end: float,
            max_age: float) -> None:
        """Take one device increment over [start, end] (start: the previous reading)."""
        for key, cell in interval_cells(site, increment, end if start is None else start, end,
                                        max_age).items():
            self._cells[key] = self._cells.get(key, Cell()) + cell
            if _shares_out(key[1]):
                it = self._it.setdefault(key[0], {})
                it[key[1]] = it.get(key[1], 0.0) + cell.joules

    def mark(self, site: Site, now: float) -> None:
        """Record how many devices each bucket has in the current interval (once per interval
        and site: the start, every boundary and every reload)."""
        current = interval_of(now)
        if self._marked == (current, id(site)):
            return
        self._marked = (current, id(site))
        for bucket, count in expected_devices(site).items():
            key = (current, bucket)
            self._devices[key] = max(self._devices.get(key, 0), count)
        for old in [i for i in self._it if i < current - INTERVAL_S]:
            del self._it[old]

    def interval_it(self, now: float) -> Mapping[str, float]:
        """IT energy by bucket in the current interval so far, or the previous one when the
        current has none yet: what the live facility counters are shared out by."""
        current = interval_of(now)
        it = self._it.get(current, {})
        return it if sum(it.values()) > 0 else self._it.get(current - INTERVAL_S, {})

    def write(self, db: sqlite3.Connection) -> None:
        """Add the pending deltas to the file (inside the caller's transaction)."""
        keys = self._cells.keys() | self._devices.keys()
        db.executemany(_UPSERT, [
            (start, bucket, cell.joules, cell.covered_s, cell.gap_j,
             self._devices.get((start, bucket), 0))
            for (start, bucket) in sorted(keys)
            for cell in (self._cells.get((start, bucket), Cell()),)])

    def saved(self) -> None:
        """The pending deltas are in the file: forget them."""
        self._cells.clear()
        self._devices.clear()

    @property
    def pending(self) -> int:
        """(interval, bucket) rows waiting for a save."""
        return len(self._cells.keys() | self._devices.keys())


def _shares_out(bucket: str) -> bool:
    return bucket in _IT_BUCKETS or bucket.startswith(TENANT_PREFIX)


def read_recorded(path: Path, start: int, end: int) -> Recorded:
    """The ledger's intervals in [start, end), read-only (the daemon may be writing)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no energy ledger here (has `dcim run` run with this "
                                "state_dir?)")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows: dict[int, dict[str, tuple[Cell, int]]] = {}
        for i, bucket, joules, covered, gap, devices in db.execute(
                "SELECT start, bucket, joules, covered_s, gap_j, devices FROM interval_energy "
                "WHERE start >= ? AND start < ?", (start, end)):
            rows.setdefault(i, {})[bucket] = (Cell(joules, covered, gap), devices)
    except sqlite3.OperationalError as exc:
        raise FileNotFoundError(f"{path}: no interval ledger in this state file ({exc}); "
                                "it starts with the first `dcim run` of this version") from None
    finally:
        db.close()
    return Recorded(rows)
