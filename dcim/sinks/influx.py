"""InfluxDB sink: snapshots -> line protocol -> durable spool -> POST /api/v2/write (2.x and 3.x).

publish() only turns a snapshot into lines and appends them to an in-memory list; a background
task moves them into the SQLite spool (in a worker thread) twice a second, and another task
sends the oldest spooled points in gzip batches and deletes them once the server accepted them.

Requests go through influxdb-client's async client, one level below its WriteApi: the
generated WriteService posts the batch exactly as spooled (already line protocol, gzipped in a
worker thread rather than on the event loop), and every non-2xx answer comes back as an
ApiException carrying the status and the Retry-After header. That response handling is the
point of this sink (split on 413, never a library retry or a batch dropped behind our back),
so the batching and retry layers of WriteApi are deliberately not used.

Response handling: 2xx acknowledges the batch; 429 and 5xx (and network errors) back off,
honouring Retry-After up to max_backoff; a timeout resends the same lines and lengthens the
next write's timeout (WriteTimeout); 413 splits the batch; 400/422 drop the batch and count it; 401/403
keep everything, log once at ERROR and export dcim_influx_auth_failed until a write succeeds.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import gzip
import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

import aiohttp
from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
from influxdb_client.rest import ApiException
from influxdb_client.service.write_service import WriteService
from prometheus_client.metrics_core import Metric

from dcim.backoff import Backoff, pause
from dcim.compute.snapshot import Published
from dcim.config import InfluxSinkConfig
from dcim.logonce import LogOnce
from dcim.metric_families import counter, gauge
from dcim.sinks.influx_lines import LineMaker
from dcim.sinks.spool import Batch, MemorySpool, Outbox, SpoolError, SqliteSpool
from dcim.tasks import CANCEL_WAIT_S, cancel_and_wait

log = logging.getLogger("dcim.influx")

T = TypeVar("T")
SPOOL_FLUSH_S = 0.5
MAX_BATCH_BYTES = 4 * 1024 * 1024
AUTH_RETRY_S = 30.0
SPOOL_REOPEN_S = 30.0
MAX_RETRY_AFTER_S = 3600.0
# The longest a write may take once slow answers stretched the timeout: this many times `timeout`.
MAX_TIMEOUT_FACTOR = 12

Action = Literal["ok", "retry", "split", "drop", "auth"]


class WriteTimeout:
    """The per-request timeout, sized to the endpoint.

    A write that times out may still have been stored: the server only answered late. Sending
    it again with the same short timeout would time out again, and again, each copy stored by
    an endpoint that does not deduplicate. So after a timeout the next attempt waits twice as
    long (up to `cap`), and after a success the timeout follows what writes really take (4x the
    last duration, never below the configured `timeout`), shrinking slowly (5 % per success) so
    one fast write does not bring back a timeout the endpoint cannot meet.
    """

    def __init__(self, floor: float, cap: float):
        self.floor = floor
        self.cap = max(cap, floor)
        self.current = floor

    def timed_out(self) -> None:
        """A write got no answer in time: wait longer for the next one."""
        self.current = min(self.current * 2, self.cap)

    def succeeded(self, duration: float) -> None:
        """A write was answered after `duration` seconds."""
        self.current = min(max(self.floor, 4 * duration, self.current * 0.95), self.cap)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What to do with a batch after the server answered."""

    action: Action
    delay: float | None = None  # seconds the server asked us to wait (Retry-After)


def retry_after(header: str | None, now: float) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or an HTTP date), or None."""
    if not header:
        return None
    header = header.strip()
    try:
        seconds = float(header)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(header)
        except (TypeError, ValueError):
            return None
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def classify(status: int, retry_after_header: str | None = None, now: float = 0.0) -> Verdict:
    """Map an HTTP status of /api/v2/write onto an action."""
    if 200 <= status < 300:
        return Verdict("ok")
    if status == 413:
        return Verdict("split")
    if status in (401, 403):
        return Verdict("auth")
    if status == 429 or status >= 500:
        return Verdict("retry", retry_after(retry_after_header, now))
    if status in (400, 422):
        return Verdict("drop")
    # Anything else (404: wrong bucket or org, 405, ...) may be fixed by the operator: keep data.
    return Verdict("retry", retry_after(retry_after_header, now))


def resolve_spool_path(config: InfluxSinkConfig, state_dir: Path) -> Path:
    """Where the spool lives: config.spool (relative to the state directory) or the default."""
    if config.spool is None:
        return state_dir / "influx-spool.db"
    return config.spool if config.spool.is_absolute() else state_dir / config.spool


class InfluxSink:
    """The InfluxDB sink (see the module docstring)."""

    name = "influxdb"

    def __init__(self, config: InfluxSinkConfig, state_dir: Path, lines: LineMaker | None = None):
        self.config = config
        self.spool_path = resolve_spool_path(config, state_dir)
        self.max_bytes = int(config.max_spool_mb * 1024 * 1024)
        # A sink restarted by a reload takes over its predecessor's LineMaker: a fresh one would
        # write every device's latest poll again (a duplicate per device per reload).
        self.lines = lines if lines is not None else LineMaker()
        self.lines.keepalive = config.keepalive
        self._pending: list[tuple[str, float]] = []
        self._pending_bytes = 0
        self._outbox: Outbox | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="influx-spool")
        self._client: InfluxDBClientAsync | None = None
        self._writer: WriteService | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()
        self._stopping = False
        self._sending = False
        # self-health, read by metrics() from the scrape thread
        self.sent = 0
        self.dropped: dict[str, int] = {}
        self.retries: dict[str, int] = {}
        self.batches = 0
        self.auth_failed = False
        self.spool_failed = False
        self.last_success: float | None = None
        self.last_error: str | None = None
        self._queued = 0
        self._spool_bytes = 0
        self._oldest: float | None = None
        self._problems = LogOnce(log)
        self._timeout = WriteTimeout(config.timeout, config.timeout * MAX_TIMEOUT_FACTOR)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Open the spool (falling back to memory) and start the writer and sender tasks."""
        await self._open_spool()
        # The session's own timeout is only a backstop: each write runs under self._timeout.
        self._client = InfluxDBClientAsync(
            url=self.config.url, token=self.config.secret_token() or "", org=self.config.org,
            timeout=int(self._timeout.cap * 1000) + 1000, verify_ssl=self.config.tls_verify,
            ssl_ca_cert=str(self.config.ca_file) if self.config.ca_file else None,
            connection_pool_maxsize=2)
        self._writer = WriteService(self._client.api_client)  # type: ignore[no-untyped-call]
        self._tasks = [asyncio.create_task(self._spool_loop(), name="influx-spool"),
                       asyncio.create_task(self._send_loop(), name="influx-send")]

    async def stop(self, timeout: float) -> None:
        """Spool everything, send what can be sent within timeout, keep the rest on disk."""
        deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        if self._tasks:
            # Let a request in flight finish and record its answer, else it would go out twice.
            _, send_task = self._tasks
            await asyncio.wait({send_task}, timeout=max(deadline - time.monotonic(), 0.1))
        await cancel_and_wait(self._tasks, CANCEL_WAIT_S)
        self._tasks = []
        await self._flush_pending()
        with contextlib.suppress(TimeoutError, Exception):
            remaining = deadline - time.monotonic()
            if remaining > 0:
                await asyncio.wait_for(self._drain_once(), remaining)
        if self._client is not None:
            await self._client.close()  # type: ignore[no-untyped-call]
        if self._outbox is not None:
            outbox = self._outbox
            await self._run(outbox.close)
        self._executor.shutdown(wait=True)

    # -- publish (never blocks) ------------------------------------------------------------

    def publish(self, published: Published) -> None:
        """Queue the lines new in this snapshot; the writer task spools them."""
        lines = self.lines.lines(published)
        if not lines:
            return
        stamp = time.time()
        for line in lines:
            self._pending.append((line, stamp))
            self._pending_bytes += len(line) + 1
        # While the spool cannot take them, memory is bounded like the spool.
        if self._pending_bytes > self.max_bytes:
            self._trim_pending()
        self._update_queued()

    def _trim_pending(self) -> None:
        dropped = 0
        while self._pending and self._pending_bytes > self.max_bytes:
            line, _ = self._pending.pop(0)
            self._pending_bytes -= len(line) + 1
            dropped += 1
        self._count_drop("spool_full", dropped)

    # -- spool -----------------------------------------------------------------------------

    async def _run(self, fn: Any, *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    async def _open_spool(self) -> None:
        try:
            spool = await self._run(SqliteSpool, self.spool_path, self.max_bytes)
        except SpoolError as exc:
            self._problems.problem("spool", f"spool unavailable, points are kept in memory only: {exc}")
            self.spool_failed = True
            if self._outbox is None:
                self._outbox = MemorySpool(self.max_bytes)
            return
        if spool.set_aside is not None:
            aside = spool.set_aside
            held = "an unknown number of" if aside.points is None else str(aside.points)
            log.error("influxdb spool %s cannot be used (%s): kept as %s with %s points (recover "
                      "them with `sqlite3 %s .recover`); a new spool is started", self.spool_path,
                      aside.reason, aside.path, held, aside.path)
            self._count_drop("spool_damaged", aside.points or 0)
        if isinstance(self._outbox, MemorySpool):
            # Move what piled up in memory to disk, oldest first.
            rows = self._outbox.drain()
            self._pending[:0] = rows
            self._pending_bytes += sum(len(line) + 1 for line, _ in rows)
        self._outbox = spool
        if self.spool_failed:
            log.warning("influxdb spool %s is usable again", self.spool_path)
        self.spool_failed = False
        self._problems.clear("spool")
        self._refresh_stats()

    async def _spool_loop(self) -> None:
        last_open_try = time.monotonic()
        while True:
            await asyncio.sleep(SPOOL_FLUSH_S)
            try:
                if self.spool_failed and time.monotonic() - last_open_try >= SPOOL_REOPEN_S:
                    last_open_try = time.monotonic()
                    await self._open_spool()
                await self._flush_pending()
            except Exception:
                log.exception("influxdb spool writer failed; retrying")

    async def _flush_pending(self) -> None:
        if not self._pending or self._outbox is None:
            return
        rows, self._pending = self._pending, []
        self._pending_bytes = 0
        outbox = self._outbox
        try:
            dropped = await self._run(outbox.append, rows)
        except SpoolError as exc:
            # Disk full or read-only: keep them in memory (bounded) and try again next time.
            self._pending[:0] = rows
            self._pending_bytes += sum(len(line) + 1 for line, _ in rows)
            self._trim_pending()
            self._problems.problem("spool", f"cannot write the spool, holding points in memory: {exc}")
            self.spool_failed = True
            self._update_queued()
            return
        if self.spool_failed and isinstance(outbox, SqliteSpool):
            log.warning("influxdb spool %s is writable again", self.spool_path)
            self.spool_failed = False
            self._problems.clear("spool")
        self._count_drop("spool_full", dropped)
        self._refresh_stats()
        self._wake.set()

    def _refresh_stats(self) -> None:
        if self._outbox is not None:
            stats = self._outbox.stats()
            self._spool_bytes = stats.bytes
            self._oldest = stats.oldest
        self._update_queued()

    def _update_queued(self) -> None:
        stats = self._outbox.stats() if self._outbox is not None else None
        self._queued = (stats.points if stats else 0) + len(self._pending)
        if stats is not None:
            self._oldest = stats.oldest
        if self._pending and (self._oldest is None or self._pending[0][1] < self._oldest):
            self._oldest = self._pending[0][1]

    # -- sending ---------------------------------------------------------------------------

    async def _send_loop(self) -> None:
        while not self._stopping:
            try:
                await self._send_forever()
            except Exception:
                # A bug must not silently stop delivery: log it and carry on.
                log.exception("influxdb sender failed; restarting it")
                await self._pause(1.0, wake=False)

    async def _send_forever(self) -> None:
        backoff = Backoff(maximum=self.config.max_backoff, jitter=0.2)
        last_send = time.monotonic()
        while not self._stopping:
            queued = self._outbox.stats().points if self._outbox is not None else 0
            due = time.monotonic() - last_send >= self.config.flush_interval
            if queued == 0 or (queued < self.config.batch_size and not due):
                wait = max(self.config.flush_interval - (time.monotonic() - last_send), 0.05)
                await self._pause(wait)
                continue
            last_send = time.monotonic()
            verdict = await self._send_next()
            if verdict is None:
                backoff.reset()
                continue
            if verdict.action == "auth":
                await self._pause(AUTH_RETRY_S, wake=False)
                continue
            # Retry-After is honoured up to max_backoff, then the server is probed again: one
            # "come back in an hour" must not stop delivery for an hour.
            delay = backoff.next() if verdict.delay is None else min(verdict.delay,
                                                                     self.config.max_backoff)
            await self._pause(delay, wake=False)

    async def _pause(self, seconds: float, wake: bool = True) -> None:
        """Sleep; new points (if wake) or stop() end it early."""
        self._wake.clear()
        if self._stopping:
            return
        if not wake:
            # Only stop() may cut a back-off short; new points must not hammer a failing server.
            await pause(seconds, self._wake, lambda: self._stopping)
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)

    async def _send_next(self) -> Verdict | None:
        """Send the oldest batch; None when it was acknowledged (or dropped for good)."""
        outbox = self._outbox
        if outbox is None:
            return None
        try:
            batch = await self._run(outbox.peek, self.config.batch_size, MAX_BATCH_BYTES)
        except SpoolError as exc:
            self._problems.problem("spool-read", str(exc))
            return Verdict("retry", 5.0)
        if not batch.ids:
            return None
        return await self._send_batch(outbox, batch)

    async def _send_batch(self, outbox: Outbox, batch: Batch) -> Verdict | None:
        verdict, detail = await self._post(batch)
        if verdict.action == "ok":
            await self._ack(outbox, batch)
            self.sent += len(batch.ids)
            self.last_success = time.time()
            if self.auth_failed:
                log.warning("influxdb accepts writes again")
            self.auth_failed = False
            self.last_error = None
            self._problems.clear("auth", "http", "net", "drop")
            return None
        if verdict.action == "split":
            if len(batch.ids) == 1:
                self._problems.problem(
                    "drop", f"influxdb refused a single point as too large (413): {detail}")
                await self._ack(outbox, batch)
                self._count_drop("too_large", 1)
                return None
            first, second = batch.split()
            for half in (first, second):
                result = await self._send_batch(outbox, half)
                if result is not None:
                    return result
            return None
        if verdict.action == "drop":
            self._problems.problem("drop", f"influxdb rejected a batch of {len(batch.ids)} points: {detail}")
            await self._ack(outbox, batch)
            self._count_drop("rejected", len(batch.ids))
            return None
        if verdict.action == "auth":
            self.auth_failed = True
            self._problems.problem("auth", f"influxdb refused the token ({detail}); points are kept in the "
                                  "spool until the token is fixed")
            return verdict
        return verdict

    async def _ack(self, outbox: Outbox, batch: Batch) -> None:
        try:
            await self._run(outbox.ack, batch.ids)
        except SpoolError as exc:
            self._problems.problem("spool", str(exc))
        self._refresh_stats()

    async def _post(self, batch: Batch) -> tuple[Verdict, str]:
        """One write of a batch; network failures count as retryable."""
        assert self._writer is not None
        self.batches += 1
        body = await asyncio.get_running_loop().run_in_executor(
            None, gzip.compress, batch.body(), 5)
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._timeout.current):
                await self._writer.post_write_async(  # type: ignore[no-untyped-call]
                    org=self.config.org, bucket=self.config.bucket, body=body, precision="ms",
                    content_encoding="gzip", content_type="text/plain; charset=utf-8",
                    accept="application/json")
            self._timeout.succeeded(time.monotonic() - started)
            return Verdict("ok"), "ok"
        except ApiException as exc:
            self._timeout.succeeded(time.monotonic() - started)
            status = int(exc.status or 0)
            text = exc.body.decode("utf-8", "replace") if isinstance(exc.body, bytes) else str(exc.body or "")
            retry_header = exc.headers.get("Retry-After") if exc.headers else None
            verdict = classify(status, retry_header, time.time())
            detail = f"HTTP {status} {text[:300].strip()}".strip()
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            reason = "network"
            if isinstance(exc, TimeoutError):
                # The server may have stored it: the same lines (same timestamps) go out again,
                # and wait longer this time (see WriteTimeout).
                reason, detail = "timeout", f"no answer within {self._timeout.current:g}s"
                self._timeout.timed_out()
            self._count_retry(reason)
            self.last_error = detail
            self._problems.problem("net", f"cannot reach influxdb at {self.config.url}: {detail}; "
                                 "points stay in the spool")
            return Verdict("retry"), detail
        self.last_error = detail
        if verdict.action == "retry":
            self._count_retry(str(status))
            self._problems.problem("http", f"influxdb answered {detail}; retrying")
        return verdict, detail

    async def _drain_once(self) -> None:
        """At shutdown: send batches until the spool is empty or the server refuses."""
        while self._outbox is not None and self._outbox.stats().points:
            if await self._send_next() is not None:
                return

    # -- self-health -----------------------------------------------------------------------

    def _count_drop(self, reason: str, n: int) -> None:
        if n:
            self.dropped[reason] = self.dropped.get(reason, 0) + n

    def _count_retry(self, reason: str) -> None:
        self.retries[reason] = self.retries.get(reason, 0) + 1

    def metrics(self) -> Iterable[Metric]:
        """dcim_influx_* self-health series."""
        now = time.time()
        yield gauge("dcim_influx_points_queued", "Points waiting to be written (spool and memory)",
                    float(self._queued))
        yield counter("dcim_influx_points_sent", "Points InfluxDB accepted",
                      {(): float(self.sent)}, [])
        drops: dict[tuple[str, ...], float] = {(r,): float(n) for r, n in sorted(self.dropped.items())}
        for reason in ("spool_full", "rejected", "too_large", "spool_damaged"):
            drops.setdefault((reason,), 0.0)
        yield counter("dcim_influx_points_dropped",
                      "Points given up, by reason (spool_full, rejected = 400/422, too_large = 413, "
                      "spool_damaged = in a spool file set aside as unreadable)",
                      drops, ["reason"])
        yield gauge("dcim_influx_write_timeout_seconds",
                    "How long the next write may take (grows after timeouts, see docs/influxdb.md)",
                    self._timeout.current)
        yield counter("dcim_influx_write_retries",
                      "Writes to retry, by HTTP status, 'network' or 'timeout' (a timed-out write "
                      "may have been stored: its resend is a possible duplicate)",
                      {(r,): float(n) for r, n in sorted(self.retries.items())}, ["reason"])
        yield gauge("dcim_influx_spool_bytes", "Bytes of line protocol held in the spool",
                    float(self._spool_bytes))
        age = now - self._oldest if self._oldest is not None else 0.0
        yield gauge("dcim_influx_oldest_unsent_age_seconds",
                    "Age of the oldest point not yet written (0 when none)", max(age, 0.0))
        yield gauge("dcim_influx_auth_failed",
                    "1 while InfluxDB refuses the token (401/403); points are kept",
                    1.0 if self.auth_failed else 0.0)
        yield gauge("dcim_influx_spool_failed",
                    "1 while the spool file cannot be written (points held in memory)",
                    1.0 if self.spool_failed else 0.0)
        yield gauge("dcim_influx_up", "1 when the last write attempt succeeded",
                    1.0 if self.last_error is None and not self.auth_failed else 0.0)
        if self.last_success is not None:
            yield gauge("dcim_influx_last_success_timestamp_seconds",
                        "When InfluxDB last accepted a batch", self.last_success)

