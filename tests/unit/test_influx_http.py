"""InfluxDB sink response handling against a real HTTP server that answers with chosen codes.

VictoriaMetrics (test_influx_vm.py) never answers 429/413/400/401 on demand, so these cases use
a small aiohttp server in the test: the sink's real HTTP client, gzip and spool, a scripted
server. Every test checks what the server received, line by line.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web
from support.sink_site import World

from dcim.config import InfluxSinkConfig
from dcim.sinks import influx
from dcim.sinks.influx import InfluxSink, classify, retry_after
from dcim.sinks.influx_lines import LineMaker
from dcim.sinks.spool import SqliteSpool


@dataclass
class Script:
    """Answers in order (the last one repeats); records every request."""

    answers: list[Callable[[list[str]], web.Response]] = field(default_factory=list)
    requests: list[tuple[int, list[str], float, dict[str, str]]] = field(default_factory=list)
    accepted: list[str] = field(default_factory=list)
    encodings: list[str] = field(default_factory=list)
    auth: list[str] = field(default_factory=list)
    # Seconds to wait before answering, per request in order (the last repeats): a server that
    # stores the batch at once but answers late.
    delays: list[float] = field(default_factory=list)

    async def handle(self, request: web.Request) -> web.Response:
        # aiohttp's server inflates gzip bodies itself; the header says what was sent.
        self.encodings.append(request.headers.get("Content-Encoding", ""))
        self.auth.append(request.headers.get("Authorization", ""))
        raw = await request.read()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
        lines = [line for line in raw.decode().split("\n") if line]
        index = len(self.requests)
        answer = self.answers[min(index, len(self.answers) - 1)]
        response = answer(lines)
        self.requests.append((response.status, lines, time.monotonic(), dict(request.query)))
        if 200 <= response.status < 300:
            self.accepted.extend(lines)
        if self.delays:
            await asyncio.sleep(self.delays[min(index, len(self.delays) - 1)])
        return response


def ok(_: list[str]) -> web.Response:
    return web.Response(status=204)


def status(code: int, **headers: str) -> Callable[[list[str]], web.Response]:
    return lambda _: web.Response(status=code, headers=headers, text='{"code":"x","message":"m"}')


@pytest.fixture
async def server() -> AsyncIterator[tuple[Script, str]]:
    script = Script()
    app = web.Application()
    app.router.add_post("/api/v2/write", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    yield script, f"http://127.0.0.1:{port}"
    await runner.cleanup()


def _sink(url: str, tmp_path: Path, lines: LineMaker | None = None, **kw: object) -> InfluxSink:
    config = InfluxSinkConfig.model_validate({
        "url": url, "org": "o", "bucket": "b", "token": "secret-token",
        "flush_interval": "200ms", "batch_size": 1000, **kw})
    return InfluxSink(config, tmp_path, lines)


async def _until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


def _feed(sink: InfluxSink, world: World, t0: float, ticks: int) -> None:
    for i in range(ticks):
        world.poll_all(t0 + i, rack_kw=50.0 + i)
        sink.publish(world.published(t0 + i + 0.5))


def _expected(world: World, t0: float, ticks: int) -> list[str]:
    from dcim.sinks.influx_lines import LineMaker
    maker = LineMaker()
    fresh = World(world.site)
    out: list[str] = []
    for i in range(ticks):
        fresh.poll_all(t0 + i, rack_kw=50.0 + i)
        out += maker.lines(fresh.published(t0 + i + 0.5))
    return out


def test_classify_table() -> None:
    assert classify(204).action == "ok"
    assert classify(429, "7").delay == 7.0
    assert classify(503).action == "retry" and classify(503).delay is None
    assert classify(413).action == "split"
    assert classify(400).action == "drop" and classify(422).action == "drop"
    assert classify(401).action == "auth" and classify(403).action == "auth"
    assert classify(404).action == "retry"


def test_retry_after_forms() -> None:
    assert retry_after("3", 0) == 3.0
    assert retry_after("Wed, 21 Oct 2015 07:28:10 GMT", 1445412480.0) == 10.0
    assert retry_after("soon", 0) is None
    assert retry_after(None, 0) is None


async def test_everything_arrives_once_with_token_and_gzip(server: tuple[Script, str],
                                                           tmp_path: Path) -> None:
    script, url = server
    script.answers = [ok]
    sink = _sink(url, tmp_path)
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 5)
    expected = _expected(world, 1_700_000_000.0, 5)
    await _until(lambda: len(script.accepted) >= len(expected))
    await sink.stop(2.0)
    assert script.accepted == expected
    assert script.requests[0][3] == {"org": "o", "bucket": "b", "precision": "ms"}
    assert set(script.encodings) == {"gzip"}
    assert set(script.auth) == {"Token secret-token"}
    assert sink.sent == len(expected) and sink.dropped == {}


async def test_429_honours_retry_after_and_resends(server: tuple[Script, str],
                                                   tmp_path: Path) -> None:
    script, url = server
    script.answers = [status(429, **{"Retry-After": "2"}), ok]
    sink = _sink(url, tmp_path)
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 3)
    expected = _expected(world, 1_700_000_000.0, 3)
    await _until(lambda: len(script.accepted) >= len(expected))
    await sink.stop(2.0)
    assert script.requests[1][2] - script.requests[0][2] >= 1.9
    assert script.accepted == expected
    assert sink.retries == {"429": 1}


async def test_an_hour_of_retry_after_is_capped_at_max_backoff(server: tuple[Script, str],
                                                               tmp_path: Path) -> None:
    script, url = server
    script.answers = [status(429, **{"Retry-After": "3600"}), status(429, **{"Retry-After": "3600"}),
                      ok]
    sink = _sink(url, tmp_path, max_backoff="500ms")
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 3)
    expected = _expected(world, 1_700_000_000.0, 3)
    # Delivered after two refusals (an uncapped wait would be an hour).
    await _until(lambda: len(script.accepted) >= len(expected))
    await sink.stop(2.0)
    assert script.accepted == expected
    assert sink.retries == {"429": 2}


async def test_a_write_answered_after_the_timeout_is_resent_once_not_forever(
        server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    script.answers = [ok]
    script.delays = [0.8]  # every write is stored at once and answered after 0.8 s
    sink = _sink(url, tmp_path, timeout="500ms")
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 2)
    first = _expected(world, 1_700_000_000.0, 2)
    await _until(lambda: sink.sent >= len(first))
    _feed(sink, world, 1_700_000_002.0, 3)  # later batches: the timeout now fits the server
    await _until(lambda: sink.sent >= len(first) + len(_expected(world, 1_700_000_002.0, 3)))
    await sink.stop(2.0)
    assert sink.retries == {"timeout": 1}
    # The one resend is the same lines with the same timestamps (an endpoint that overwrites
    # identical points stores each once), and only the first batch was sent twice.
    assert script.requests[0][1] == script.requests[1][1] == first
    assert len(script.requests) == 3
    assert sink._timeout.current >= 4 * 0.8


def test_write_timeout_grows_after_timeouts_and_follows_slow_answers() -> None:
    timeout = influx.WriteTimeout(floor=10.0, cap=120.0)
    timeout.timed_out()
    timeout.timed_out()
    assert timeout.current == 40.0
    for _ in range(5):
        timeout.timed_out()
    assert timeout.current == 120.0  # capped
    timeout.succeeded(15.0)  # a slow endpoint: 4x what it takes
    assert timeout.current == 114.0
    for _ in range(200):
        timeout.succeeded(15.0)
    assert timeout.current == 60.0
    for _ in range(200):
        timeout.succeeded(0.1)
    assert timeout.current == 10.0  # back to the configured timeout, never below


async def test_5xx_backs_off_and_keeps_order(server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    script.answers = [status(503), status(500), ok]
    sink = _sink(url, tmp_path)
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 4)
    expected = _expected(world, 1_700_000_000.0, 4)
    await _until(lambda: len(script.accepted) >= len(expected))
    await sink.stop(2.0)
    assert script.accepted == expected
    assert sink.retries == {"503": 1, "500": 1}


async def test_413_splits_until_the_server_accepts(server: tuple[Script, str],
                                                   tmp_path: Path) -> None:
    script, url = server
    script.answers = [lambda lines: web.Response(status=413 if len(lines) > 10 else 204)]
    sink = _sink(url, tmp_path)
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 3)
    expected = _expected(world, 1_700_000_000.0, 3)
    await _until(lambda: len(script.accepted) >= len(expected))
    await sink.stop(2.0)
    assert script.accepted == expected
    assert all(len(lines) <= 10 for code, lines, _, _ in script.requests if code == 204)
    assert sink.dropped == {}


async def test_413_on_a_single_point_drops_only_it(server: tuple[Script, str],
                                                   tmp_path: Path) -> None:
    script, url = server
    script.answers = [lambda lines: web.Response(
        status=413 if any("dcim_site" in line for line in lines) else 204)]
    sink = _sink(url, tmp_path)
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 1)
    expected = [line for line in _expected(world, 1_700_000_000.0, 1) if "dcim_site" not in line]
    await _until(lambda: sink.dropped.get("too_large") == 1 and len(script.accepted) >= len(expected))
    await sink.stop(2.0)
    assert script.accepted == expected


async def test_400_drops_that_batch_counts_it_and_goes_on(server: tuple[Script, str],
                                                          tmp_path: Path,
                                                          caplog: pytest.LogCaptureFixture) -> None:
    script, url = server
    script.answers = [status(400), ok]
    sink = _sink(url, tmp_path)
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 1)
    first = _expected(world, 1_700_000_000.0, 1)
    await _until(lambda: len(script.requests) >= 1)
    await _until(lambda: sink.dropped.get("rejected") == len(first))
    _feed(sink, world, 1_700_000_100.0, 1)
    await _until(lambda: len(script.accepted) > 0)
    await sink.stop(2.0)
    assert not set(first) & set(script.accepted)
    assert any("rejected a batch" in r.message for r in caplog.records)


async def test_401_keeps_data_logs_once_and_exports_it(server: tuple[Script, str], tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(influx, "AUTH_RETRY_S", 0.3)
    script, url = server
    script.answers = [status(401)] * 5 + [ok]
    sink = _sink(url, tmp_path)
    caplog.set_level(logging.ERROR, logger="dcim.influx")
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 2)
    expected = _expected(world, 1_700_000_000.0, 2)
    await _until(lambda: len(script.requests) >= 3)
    metrics = {m.name: m for m in sink.metrics()}
    assert metrics["dcim_influx_auth_failed"].samples[0].value == 1.0
    assert metrics["dcim_influx_points_queued"].samples[0].value == len(expected)
    await _until(lambda: len(script.accepted) >= len(expected))
    await sink.stop(2.0)
    assert script.accepted == expected
    auth_logs = [r for r in caplog.records if "refused the token" in r.message]
    assert len(auth_logs) == 1
    assert "secret-token" not in caplog.text
    assert not sink.auth_failed


async def test_unreachable_url_keeps_spool_and_delivers_later(tmp_path: Path) -> None:
    # A port nobody listens on, then a server appears there.
    probe = web.AppRunner(web.Application())
    await probe.setup()
    site = web.TCPSite(probe, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    await probe.cleanup()
    sink = _sink(f"http://127.0.0.1:{port}", tmp_path, max_backoff="1s")
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 3)
    expected = _expected(world, 1_700_000_000.0, 3)
    await _until(lambda: sink.retries.get("network", 0) >= 2)
    assert sink.sent == 0
    metrics = {m.name: m for m in sink.metrics()}
    assert metrics["dcim_influx_up"].samples[0].value == 0.0
    assert metrics["dcim_influx_oldest_unsent_age_seconds"].samples[0].value > 0
    script = Script(answers=[ok])
    app = web.Application()
    app.router.add_post("/api/v2/write", script.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        await _until(lambda: len(script.accepted) >= len(expected))
    finally:
        await sink.stop(2.0)
        await runner.cleanup()
    assert script.accepted == expected


async def test_restart_sends_only_unsent_points(server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    script.answers = [status(503)]
    sink = _sink(url, tmp_path)
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 2)
    expected = _expected(world, 1_700_000_000.0, 2)
    await _until(lambda: len(script.requests) >= 1)
    await sink.stop(0.5)  # server still failing: everything stays in the spool
    assert script.accepted == []
    script.answers = [ok]
    script.requests.clear()
    again = _sink(url, tmp_path)
    await again.start()
    await _until(lambda: len(script.accepted) >= len(expected))
    await again.stop(2.0)
    assert script.accepted == expected
    # and a third start sends nothing at all
    script.accepted.clear()
    third = _sink(url, tmp_path)
    await third.start()
    await asyncio.sleep(0.6)
    await third.stop(1.0)
    assert script.accepted == []


async def test_tiny_spool_drops_oldest_and_counts(server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    script.answers = [status(503)]
    sink = _sink(url, tmp_path, max_spool_mb=0.002)  # ~2 KB: a couple of ticks
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 6)
    await _until(lambda: sink.dropped.get("spool_full", 0) > 0)
    assert sink._spool_bytes <= 0.002 * 1024 * 1024
    script.answers = [ok]
    await _until(lambda: sink._queued == 0)
    await sink.stop(1.0)
    newest = _expected(world, 1_700_000_000.0, 6)[-1]
    assert script.accepted[-1] == newest


async def test_unusable_spool_path_falls_back_to_memory(server: tuple[Script, str], tmp_path: Path,
                                                       caplog: pytest.LogCaptureFixture) -> None:
    script, url = server
    script.answers = [ok]
    (tmp_path / "blocked").write_text("a file where a directory should be")
    sink = _sink(url, tmp_path, spool=str(tmp_path / "blocked" / "spool.db"))
    await sink.start()
    assert sink.spool_failed
    world = World()
    _feed(sink, world, 1_700_000_000.0, 2)
    expected = _expected(world, 1_700_000_000.0, 2)
    await _until(lambda: len(script.accepted) >= len(expected))
    metrics = {m.name: m for m in sink.metrics()}
    assert metrics["dcim_influx_spool_failed"].samples[0].value == 1.0
    await sink.stop(1.0)
    assert script.accepted == expected
    assert sum("spool unavailable" in r.message for r in caplog.records) == 1


async def test_a_damaged_spool_is_kept_aside_said_and_delivery_goes_on(
        server: tuple[Script, str], tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    script, url = server
    script.answers = [ok]
    # A spool that held 40 points, then lost its second half (a disk fault, a bad copy).
    spool_path = tmp_path / "influx-spool.db"
    old = SqliteSpool(spool_path, 10_000_000)
    old.append([(f"dcim_site,site=s pad=\"{'x' * 300}\",n={i}i {i}", 1.0) for i in range(40)])
    old.close()
    data = spool_path.read_bytes()
    spool_path.write_bytes(data[: len(data) // 2])
    caplog.set_level(logging.ERROR, logger="dcim.influx")
    sink = _sink(url, tmp_path)
    await sink.start()
    world = World()
    _feed(sink, world, 1_700_000_000.0, 2)
    expected = _expected(world, 1_700_000_000.0, 2)
    await _until(lambda: len(script.accepted) >= len(expected))
    await sink.stop(2.0)
    assert script.accepted == expected
    (line,) = [r.getMessage() for r in caplog.records if "cannot be used" in r.getMessage()]
    assert "database disk image is malformed" in line and ".bad-" in line
    assert "an unknown number of points (recover them with `sqlite3" in line
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("influx-spool.db.bad-")]


async def test_a_sink_restarted_by_a_reload_does_not_write_old_polls_again(
        server: tuple[Script, str], tmp_path: Path) -> None:
    script, url = server
    script.answers = [ok]
    first = _sink(url, tmp_path)
    await first.start()
    world = World()
    _feed(sink=first, world=world, t0=1_700_000_000.0, ticks=2)
    expected = _expected(world, 1_700_000_000.0, 2)
    await _until(lambda: len(script.accepted) >= len(expected))
    await first.stop(2.0)
    # The reload's new sink (other settings) sees the same latest snapshot first.
    second = _sink(url, tmp_path, keepalive="90s", lines=first.lines)
    await second.start()
    second.publish(world.published(1_700_000_001.6))
    world.poll_all(1_700_000_002.0, rack_kw=52.0)
    second.publish(world.published(1_700_000_002.5))
    await _until(lambda: second.sent > 0)
    await second.stop(2.0)
    assert script.accepted[: len(expected)] == expected
    new = script.accepted[len(expected):]
    device_stamps = [line.rsplit(" ", 1)[1] for line in new if line.startswith("dcim_device,")]
    assert device_stamps and set(device_stamps) == {"1700000002000"}  # only the new poll
    assert len(script.accepted) == len(set(script.accepted))
