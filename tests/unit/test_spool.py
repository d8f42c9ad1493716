"""The InfluxDB spool: order, acknowledgement as the send position, the size bound, bad disks."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from dcim.sinks.spool import MemorySpool, SpoolError, SqliteSpool


def _rows(n: int, start: int = 0, t: float = 100.0) -> list[tuple[str, float]]:
    return [(f"m,k=v f={i:04d} {i:04d}", t) for i in range(start, start + n)]


def test_oldest_first_and_ack_is_the_send_position(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "s.db", 10_000_000)
    assert spool.append(_rows(10)) == 0
    batch = spool.peek(4, 1 << 20)
    assert [line.split()[1] for line in batch.lines] == ["f=0000", "f=0001", "f=0002", "f=0003"]
    spool.ack(batch.ids)
    assert spool.stats().points == 6
    spool.close()
    # A restart (or a crash after the ack committed) resumes at the first unacknowledged point.
    again = SqliteSpool(tmp_path / "s.db", 10_000_000)
    assert again.stats().points == 6
    assert again.peek(100, 1 << 20).lines[0].split()[1] == "f=0004"
    assert again.stats().oldest == 100.0


def test_unacked_batch_is_sent_again_after_restart(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "s.db", 10_000_000)
    spool.append(_rows(3))
    first = spool.peek(10, 1 << 20)
    spool.close()  # died before the server answered
    again = SqliteSpool(tmp_path / "s.db", 10_000_000)
    assert again.peek(10, 1 << 20).lines == first.lines


def test_peek_respects_byte_limit_but_returns_at_least_one(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "s.db", 10_000_000)
    spool.append([("x" * 500, 1.0), ("y" * 500, 1.0)])
    assert len(spool.peek(10, 100).ids) == 1
    assert len(spool.peek(10, 2000).ids) == 2


def test_bound_drops_oldest_only_when_hit(tmp_path: Path) -> None:
    line_bytes = len(_rows(1)[0][0]) + 1
    spool = SqliteSpool(tmp_path / "s.db", line_bytes * 10)
    assert spool.append(_rows(10)) == 0
    assert spool.append(_rows(3, start=10)) == 3
    stats = spool.stats()
    assert stats.points == 10 and stats.bytes <= line_bytes * 10
    assert spool.peek(1, 1 << 20).lines[0].split()[1] == "f=0003"


def test_counters_match_the_file_after_reopen(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "s.db", 10_000_000)
    spool.append(_rows(50))
    spool.ack(spool.peek(20, 1 << 20).ids)
    before = spool.stats()
    spool.close()
    assert SqliteSpool(tmp_path / "s.db", 10_000_000).stats() == before


def test_split_halves_keep_order() -> None:
    spool = MemorySpool(1 << 20)
    spool.append(_rows(5))
    first, second = spool.peek(10, 1 << 20).split()
    assert first.ids + second.ids == tuple(range(1, 6))


def test_memory_spool_bound_and_drain() -> None:
    spool = MemorySpool(100)
    dropped = spool.append([("a" * 30, 1.0)] * 5)
    assert dropped == 2 and spool.stats().points == 3
    assert len(spool.drain()) == 3 and spool.stats().points == 0


@pytest.mark.skipif(os.geteuid() == 0, reason="root ignores directory permissions")
def test_read_only_directory_is_a_spool_error(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    with pytest.raises(SpoolError):
        SqliteSpool(ro / "s.db", 1000)


def test_unwritable_file_is_a_spool_error(tmp_path: Path) -> None:
    (tmp_path / "dir.db").mkdir()  # a directory where the file should be: fails even for root
    with pytest.raises(SpoolError):
        SqliteSpool(tmp_path / "dir.db", 1000)


def test_full_disk_raises_and_keeps_what_was_spooled(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    spool = SqliteSpool(path, 1 << 30)
    spool.append(_rows(5))
    # Simulate a full disk: SQLite refuses to grow the file past max_page_count.
    pages = spool._db.execute("PRAGMA page_count").fetchone()[0]
    spool._db.execute(f"PRAGMA max_page_count={pages}")
    with pytest.raises(SpoolError):
        spool.append([("z" * 4000, 2.0)] * 50)
    assert spool.stats().points == 5
    spool.close()
    rows = sqlite3.connect(path).execute("SELECT COUNT(*) FROM points").fetchone()[0]
    assert rows == 5


def _aside(tmp_path: Path) -> list[str]:
    return sorted(p.name for p in tmp_path.iterdir() if ".bad-" in p.name)


def test_a_file_that_is_not_a_database_is_kept_aside_and_a_new_spool_started(
        tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    garbage = os.urandom(8192)
    path.write_bytes(garbage)
    spool = SqliteSpool(path, 10_000_000)
    assert spool.set_aside is not None
    assert spool.set_aside.reason == "file is not a database" and spool.set_aside.points is None
    assert spool.set_aside.path.read_bytes() == garbage  # renamed, never deleted
    assert spool.append(_rows(2)) == 0 and spool.stats().points == 2
    spool.close()
    assert SqliteSpool(path, 10_000_000).set_aside is None  # the new spool is fine


def test_a_truncated_spool_is_kept_aside(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    spool = SqliteSpool(path, 100_000_000)
    spool.append([(f"m,k=v f={'x' * 200}{i} {i}", 1.0) for i in range(5000)])
    spool.close()
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    again = SqliteSpool(path, 100_000_000)
    assert again.set_aside is not None and again.set_aside.reason == "database disk image is malformed"
    assert again.stats().points == 0
    assert all(name.startswith(again.set_aside.path.name) for name in _aside(tmp_path))


def test_an_empty_spool_file_keeps_its_write_ahead_log(tmp_path: Path) -> None:
    # SQLite would open the 0-byte file as a new database and delete the log holding the backlog.
    path = tmp_path / "s.db"
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA wal_autocheckpoint=0")
    db.execute("CREATE TABLE points (id INTEGER PRIMARY KEY, line TEXT)")
    db.executemany("INSERT INTO points (line) VALUES (?)", [("m f=1 1",)] * 100)
    wal = (tmp_path / "s.db-wal").read_bytes()
    db.close()
    path.write_bytes(b"")
    (tmp_path / "s.db-wal").write_bytes(wal)
    spool = SqliteSpool(path, 10_000_000)
    assert spool.set_aside is not None and spool.set_aside.reason == "the file is empty (0 bytes)"
    aside = spool.set_aside.path
    assert aside.read_bytes() == b""
    assert aside.with_name(aside.name + "-wal").read_bytes() == wal


def test_a_healthy_spool_is_not_set_aside(tmp_path: Path) -> None:
    spool = SqliteSpool(tmp_path / "s.db", 10_000_000)
    spool.append(_rows(3))
    spool.close()
    again = SqliteSpool(tmp_path / "s.db", 10_000_000)
    assert again.set_aside is None and again.stats().points == 3
    assert _aside(tmp_path) == []
