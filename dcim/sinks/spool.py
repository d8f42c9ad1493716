"""The durable outbox of the InfluxDB sink: line-protocol points queued in SQLite until acknowledged.

A row is deleted in the same transaction that records the server's acceptance, so the set of
rows *is* the send position: after a crash or restart only what was never acknowledged goes
out again (no full replay, unlike a disk buffer that forgets its read position). The spool is
bounded by the bytes of the points it holds; only when that bound is hit are the oldest points
dropped, and the caller counts them.

Everything here is synchronous and must run off the event loop (the sink uses one worker
thread for all spool calls, which also serialises access to the connection).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

_SCHEMA = """
CREATE TABLE IF NOT EXISTS points (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    line TEXT NOT NULL,
    bytes INTEGER NOT NULL,
    queued_at REAL NOT NULL);
"""


class SpoolError(Exception):
    """The spool cannot be read or written (read-only directory, full disk)."""


@dataclass(frozen=True, slots=True)
class SetAside:
    """A spool file that could not be used, renamed (never deleted) so its points can be
    recovered by hand (`sqlite3 FILE .recover`)."""

    path: Path
    reason: str
    points: int | None  # how many points it held, when that could still be read


# SQLITE_CORRUPT and SQLITE_NOTADB (primary result codes): the file itself is damaged.
_CORRUPT_CODES = (11, 26)


def _damage(path: Path) -> str | None:
    """Why an existing spool file cannot be opened as is, or None (fine, or absent)."""
    try:
        size = path.stat().st_size
    except OSError:
        return None  # absent (a new spool) or unreadable: the normal open reports that
    if size == 0:
        # SQLite would take it as a new empty database and delete the write-ahead log next to
        # it, with whatever backlog that log still held.
        return "the file is empty (0 bytes)"
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            problems = [row[0] for row in db.execute("PRAGMA quick_check")]
    except sqlite3.DatabaseError as exc:
        if getattr(exc, "sqlite_errorcode", 0) & 0xFF in _CORRUPT_CODES:
            return str(exc)
        return None  # permissions, locks: not damage; the normal open reports them
    if problems != ["ok"]:
        return "; ".join(problems[:3])
    return None


def _points_in(path: Path) -> int | None:
    if path.stat().st_size == 0:
        return None  # any backlog is in the -wal file; opening it would delete that
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT COUNT(*) FROM points").fetchone()[0])
    except sqlite3.Error:
        return None


def set_aside(path: Path, reason: str) -> SetAside:
    """Rename a damaged spool (and its -wal / -shm files) to PATH.bad-TIMESTAMP."""
    points = _points_in(path)
    aside = path.with_name(f"{path.name}.bad-{time.strftime('%Y%m%dT%H%M%S')}")
    try:
        for suffix in ("", "-wal", "-shm"):
            source = path.with_name(path.name + suffix)
            if source.exists():
                source.rename(aside.with_name(aside.name + suffix))
    except OSError as exc:
        raise SpoolError(f"{path}: {reason}, and it cannot be moved aside: {exc}") from None
    return SetAside(aside, reason, points)


@dataclass(frozen=True, slots=True)
class SpoolStats:
    """What the spool holds, for the self-health metrics."""

    points: int
    bytes: int
    oldest: float | None  # queued_at of the oldest unsent point (wall clock)


@dataclass(frozen=True, slots=True)
class Batch:
    """Oldest unsent points, in order, with the row ids that acknowledge them."""

    ids: tuple[int, ...]
    lines: tuple[str, ...]

    def split(self) -> tuple[Batch, Batch]:
        """Two halves, for a server that refused the batch as too large."""
        mid = len(self.ids) // 2
        return Batch(self.ids[:mid], self.lines[:mid]), Batch(self.ids[mid:], self.lines[mid:])

    def body(self) -> bytes:
        """The line-protocol request body."""
        return ("\n".join(self.lines) + "\n").encode()


class Outbox(Protocol):
    """Where points wait until the server accepts them (SQLite, or memory as a fallback)."""

    def append(self, rows: list[tuple[str, float]]) -> int:
        """Queue (line, queued_at) rows; return how many of the oldest were dropped for the bound."""

    def peek(self, limit: int, max_bytes: int) -> Batch:
        """The oldest unsent points (at least one if any), without removing them."""

    def ack(self, ids: tuple[int, ...]) -> None:
        """Forget points the server accepted (or rejected for good)."""

    def stats(self) -> SpoolStats:
        """Points, bytes and the age of the oldest."""

    def close(self) -> None:
        """Release the storage."""


def _size(line: str) -> int:
    return len(line.encode()) + 1


class SqliteSpool:
    """The outbox in one SQLite file (WAL: a committed append survives kill -9)."""

    def __init__(self, path: Path, max_bytes: int):
        self.path = path
        self.max_bytes = max_bytes
        # A damaged file is renamed, never deleted, and a new spool started (the sink says so).
        damage = _damage(path)
        self.set_aside = set_aside(path, damage) if damage else None
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            # INCREMENTAL only takes effect on a new file; it lets the file shrink after a backlog.
            self._db.execute("PRAGMA auto_vacuum=INCREMENTAL")
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(_SCHEMA)
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(queued_at) FROM points").fetchone()
        except (sqlite3.Error, OSError) as exc:
            raise SpoolError(f"{path}: cannot open the spool: {exc}") from None
        self._count, self._bytes, self._oldest = int(row[0]), int(row[1]), row[2]
        self._acked_since_vacuum = 0

    def append(self, rows: list[tuple[str, float]]) -> int:
        """Queue points in one transaction; drop the oldest first if the bound would be passed."""
        if not rows:
            return 0
        sized = [(line, _size(line), queued) for line, queued in rows]
        incoming = sum(r[1] for r in sized)
        dropped = 0
        # Points that cannot fit even in an empty spool: keep the newest of the batch.
        while sized and incoming > self.max_bytes:
            incoming -= sized.pop(0)[1]
            dropped += 1
        try:
            self._db.execute("BEGIN IMMEDIATE")
            excess = self._bytes + incoming - self.max_bytes
            freed_points = 0
            if excess > 0:
                freed_points, freed_bytes = self._drop_oldest(excess)
                self._count -= freed_points
                self._bytes -= freed_bytes
            self._db.executemany("INSERT INTO points (line, bytes, queued_at) VALUES (?, ?, ?)", sized)
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            self._reload_totals()
            raise SpoolError(f"{self.path}: cannot write the spool: {exc}") from None
        self._count += len(sized)
        self._bytes += incoming
        if self._oldest is None or freed_points:
            self._reload_oldest()
        return dropped + freed_points

    def _drop_oldest(self, excess: int) -> tuple[int, int]:
        freed = 0
        cutoff = None
        points = 0
        for row_id, size in self._db.execute("SELECT id, bytes FROM points ORDER BY id"):
            freed += size
            points += 1
            cutoff = row_id
            if freed >= excess:
                break
        if cutoff is not None:
            self._db.execute("DELETE FROM points WHERE id <= ?", (cutoff,))
        return points, freed

    def peek(self, limit: int, max_bytes: int) -> Batch:
        """The oldest points up to limit rows and max_bytes (always at least one row)."""
        ids: list[int] = []
        lines: list[str] = []
        total = 0
        try:
            cursor = self._db.execute(
                "SELECT id, line, bytes FROM points ORDER BY id LIMIT ?", (limit,))
            for row_id, line, size in cursor:
                if ids and total + size > max_bytes:
                    break
                ids.append(row_id)
                lines.append(line)
                total += size
        except sqlite3.Error as exc:
            raise SpoolError(f"{self.path}: cannot read the spool: {exc}") from None
        return Batch(tuple(ids), tuple(lines))

    def ack(self, ids: tuple[int, ...]) -> None:
        """Delete acknowledged rows; batches are contiguous, so one range delete does it."""
        if not ids:
            return
        try:
            self._db.execute("BEGIN IMMEDIATE")
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0) FROM points WHERE id BETWEEN ? AND ?",
                (ids[0], ids[-1])).fetchone()
            self._db.execute("DELETE FROM points WHERE id BETWEEN ? AND ?", (ids[0], ids[-1]))
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            self._rollback()
            raise SpoolError(f"{self.path}: cannot update the spool: {exc}") from None
        self._count -= int(row[0])
        self._bytes -= int(row[1])
        self._acked_since_vacuum += int(row[0])
        self._reload_oldest()
        if self._acked_since_vacuum > 50_000:
            self._acked_since_vacuum = 0
            # Only reclaims disk space; harmless to skip when it fails.
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA incremental_vacuum")

    def stats(self) -> SpoolStats:
        """Cached counters (no query)."""
        return SpoolStats(self._count, self._bytes, self._oldest)

    def close(self) -> None:
        """Close the connection (the WAL is checkpointed)."""
        with contextlib.suppress(sqlite3.Error):
            self._db.close()

    def _rollback(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._db.execute("ROLLBACK")

    def _reload_totals(self) -> None:
        try:
            row = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(bytes), 0), MIN(queued_at) FROM points").fetchone()
            self._count, self._bytes, self._oldest = int(row[0]), int(row[1]), row[2]
        except sqlite3.Error:
            pass

    def _reload_oldest(self) -> None:
        try:
            row = self._db.execute(
                "SELECT queued_at FROM points ORDER BY id LIMIT 1").fetchone()
            self._oldest = row[0] if row else None
        except sqlite3.Error:
            pass


class MemorySpool:
    """The same outbox in memory: used only while the spool file cannot be opened."""

    def __init__(self, max_bytes: int):
        self.max_bytes = max_bytes
        self._rows: deque[tuple[int, str, int, float]] = deque()
        self._next = 1
        self._bytes = 0

    def append(self, rows: list[tuple[str, float]]) -> int:
        """Queue points; drop the oldest beyond the bound."""
        dropped = 0
        for line, queued in rows:
            size = _size(line)
            self._rows.append((self._next, line, size, queued))
            self._next += 1
            self._bytes += size
        while self._rows and self._bytes > self.max_bytes:
            self._bytes -= self._rows.popleft()[2]
            dropped += 1
        return dropped

    def peek(self, limit: int, max_bytes: int) -> Batch:
        """The oldest points up to limit rows and max_bytes."""
        ids: list[int] = []
        lines: list[str] = []
        total = 0
        for row_id, line, size, _ in self._rows:
            if len(ids) >= limit or (ids and total + size > max_bytes):
                break
            ids.append(row_id)
            lines.append(line)
            total += size
        return Batch(tuple(ids), tuple(lines))

    def ack(self, ids: tuple[int, ...]) -> None:
        """Forget acknowledged points (they are at the head)."""
        if not ids:
            return
        last = ids[-1]
        while self._rows and self._rows[0][0] <= last:
            self._bytes -= self._rows.popleft()[2]

    def drain(self) -> list[tuple[str, float]]:
        """Everything queued, oldest first, emptying the queue (to move it to disk)."""
        rows = [(line, queued) for _, line, _, queued in self._rows]
        self._rows.clear()
        self._bytes = 0
        return rows

    def stats(self) -> SpoolStats:
        """Points, bytes, oldest."""
        oldest = self._rows[0][3] if self._rows else None
        return SpoolStats(len(self._rows), self._bytes, oldest)

    def close(self) -> None:
        """Nothing to release."""
