"""SQLite persistence of the energy ledger, so a restart neither loses nor double counts energy.

A save that cannot be written now (another process holds a lock on state.db, the disk is full)
never raises into the daemon: the rows stay in memory, the failure is logged once, and every
later save writes them together with the new ones; the recovery is logged too.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Mapping
from dataclasses import astuple, fields
from pathlib import Path

from dcim.compute.energy import DeviceEnergy, Method, Totals
from dcim.daemon.intervals import SCHEMA as INTERVAL_SCHEMA
from dcim.daemon.intervals import IntervalLedger

SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS device_energy (
    device TEXT PRIMARY KEY, total_j REAL NOT NULL, method TEXT NOT NULL, last_wh REAL,
    last_power_w REAL, last_time REAL, resets INTEGER NOT NULL, wraps INTEGER NOT NULL,
    jumps INTEGER NOT NULL DEFAULT 0, glitches INTEGER NOT NULL DEFAULT 0, suspect_wh REAL,
    changed_time REAL);
CREATE TABLE IF NOT EXISTS totals (
    bucket TEXT NOT NULL, method TEXT NOT NULL, joules REAL NOT NULL,
    PRIMARY KEY (bucket, method));
"""
# Columns added after schema 1 shipped: added in place to an older file (values: defaults).
_ADDED_COLUMNS = {
    "jumps": "INTEGER NOT NULL DEFAULT 0", "glitches": "INTEGER NOT NULL DEFAULT 0",
    "suspect_wh": "REAL", "changed_time": "REAL",
}
_DEVICE_COLUMNS = ("total_j, method, last_wh, last_power_w, last_time, resets, wraps, jumps, "
                   "glitches, suspect_wh, changed_time")


log = logging.getLogger("dcim.state")

# How long a save may wait for another process's lock: short, since it runs in the event loop.
SAVE_BUSY_MS = 50
# At shutdown, the last save may wait longer: after it, nothing else keeps the energy.
CLOSE_BUSY_MS = 2000


class StateError(Exception):
    """The state database cannot be used; the message says what to do."""


class EnergyStore:
    """Energy ledger state in one SQLite file (WAL, one transaction per save), with the
    interval ledger (intervals.py) written in the same transaction."""

    def __init__(self, path: Path, now: float | None = None):
        self.path = path
        self.intervals = IntervalLedger()
        self._unsaved: dict[str, DeviceEnergy] = {}
        self._totals: Totals | None = None
        self.failures = 0  # consecutive failed saves
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            self._db.executescript(INTERVAL_SCHEMA)
            row = self._db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                self._db.execute("INSERT INTO meta VALUES ('schema', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) != SCHEMA_VERSION:
                raise StateError(f"{path}: state schema {row[0]} is not {SCHEMA_VERSION}")
            have = {r[1] for r in self._db.execute("PRAGMA table_info(device_energy)")}
            for column, decl in _ADDED_COLUMNS.items():
                if column not in have:
                    self._db.execute(f"ALTER TABLE device_energy ADD COLUMN {column} {decl}")
            self._db.execute("PRAGMA quick_check").fetchone()
            self._db.execute(f"PRAGMA busy_timeout={SAVE_BUSY_MS}")
            if now is not None:
                self.intervals.load(self._db, now)
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
                    f"SELECT device, {_DEVICE_COLUMNS} FROM device_energy")
            }
            buckets: dict[tuple[str, Method], float] = {
                (b, m): j for b, m, j in self._db.execute("SELECT bucket, method, joules FROM totals")
            }
        except sqlite3.Error as exc:
            raise StateError(f"{self.path}: cannot read the state database ({exc})") from None
        return devices, Totals(buckets)

    def save(self, devices: Mapping[str, DeviceEnergy], totals: Totals) -> bool:
        """Write changed device states and all totals atomically; never raises.

        Returns whether it was written. If not, the rows are kept and written by the next save.
        """
        self._unsaved.update(devices)
        self._totals = totals
        try:
            with self._db:
                self._db.execute("BEGIN")
                self._db.executemany(
                    f"INSERT OR REPLACE INTO device_energy (device, {_DEVICE_COLUMNS}) "
                    f"VALUES ({', '.join('?' * (len(fields(DeviceEnergy)) + 1))})",
                    [(device, *astuple(state)) for device, state in self._unsaved.items()],
                )
                self._db.executemany(
                    "INSERT OR REPLACE INTO totals VALUES (?, ?, ?)",
                    [(b, m, j) for (b, m), j in totals.buckets.items()],
                )
                self.intervals.write(self._db)
        except sqlite3.Error as exc:
            self.failures += 1
            if self.failures == 1:
                log.error("%s: cannot save energy (%s); keeping %d device states in memory and "
                          "retrying at every save", self.path, exc, len(self._unsaved))
            return False
        if self.failures:
            log.info("%s: energy saved again after %d failed saves", self.path, self.failures)
            self.failures = 0
        self._unsaved.clear()
        self.intervals.saved()
        return True

    @property
    def unsaved(self) -> int:
        """Device states waiting for a save that succeeds."""
        return len(self._unsaved)

    def close(self) -> None:
        """Write what is still unsaved (waiting longer for a lock), then close the database."""
        if (self._unsaved or self.intervals.pending or self.failures) and \
                self._totals is not None:
            self._db.execute(f"PRAGMA busy_timeout={CLOSE_BUSY_MS}")
            if not self.save({}, self._totals):
                log.error("%s: %d device energy states could not be saved before exit",
                          self.path, len(self._unsaved))
        self._db.close()
