"""SQLite persistence of the energy ledger, so a restart neither loses nor double counts energy."""

from __future__ import annotations

import sqlite3
from collections.abc import Mapping
from dataclasses import astuple
from pathlib import Path

from dcim.compute.energy import DeviceEnergy, Method, Totals

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS device_energy (
    device TEXT PRIMARY KEY, total_j REAL NOT NULL, method TEXT NOT NULL, last_wh REAL,
    last_power_w REAL, last_time REAL, resets INTEGER NOT NULL, wraps INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS totals (
    bucket TEXT NOT NULL, method TEXT NOT NULL, joules REAL NOT NULL,
    PRIMARY KEY (bucket, method));
"""


class StateError(Exception):
    """The state database cannot be used; the message says what to do."""


class EnergyStore:
    """Energy ledger state in one SQLite file (WAL, one transaction per save)."""

    def __init__(self, path: Path):
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StateError(f"{path}: state schema {row[0]} is not {SCHEMA_VERSION}")
            self._db.execute("PRAGMA quick_check").fetchone()
        except (sqlite3.Error, OSError, ValueError) as exc:
            raise StateError(
                f"{path}: cannot use the state database ({exc}); fix its permissions, or move it "
                "aside to start with fresh energy counters (totals restart from zero)"
            ) from None

    def load(self) -> tuple[dict[str, DeviceEnergy], Totals]:
        """Everything persisted: per-device ledger state and the bucket totals."""
        try:
            devices = {
                row[0]: DeviceEnergy(*row[1:])
                for row in self._db.execute(
                    "SELECT device, total_j, method, last_wh, last_power_w, last_time, resets, wraps"
                    " FROM device_energy")
            }
            buckets: dict[tuple[str, Method], float] = {
                (b, m): j for b, m, j in self._db.execute("SELECT bucket, method, joules FROM totals")
            }
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: cannot read the state database ({exc})") from None
        return devices, Totals(buckets)

    def save(self, devices: Mapping[str, DeviceEnergy], totals: Totals) -> None:
        """Write changed device states and all totals atomically."""
        with self._db:
            self._db.execute("BEGIN")
            self._db.executemany(
                "INSERT OR REPLACE INTO device_energy VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(device, *astuple(state)) for device, state in devices.items()],
            )
            self._db.executemany(
                "INSERT OR REPLACE INTO totals VALUES (?, ?, ?)",
                [(b, m, j) for (b, m), j in totals.buckets.items()],
            )

    def close(self) -> None:
        """Close the database."""
        self._db.close()
