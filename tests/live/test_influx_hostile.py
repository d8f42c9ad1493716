"""`dcim run` writing through a misbehaving InfluxDB endpoint (tests/support/hostile_http.py) into
VictoriaMetrics: 429 with an hour of Retry-After, 503, 413 on a backlog, a hanging server, and a
server that stores a write but answers after dcim's timeout.

What must hold: polling never stops; every poll of every device reaches the database; a refused
or unanswered write is resent, a Retry-After of an hour is capped (dcim keeps probing), and the
only duplicates are the resends of a write answered too late: at most one batch (the write
timeout then grows to fit the endpoint), identical to the first send, so an endpoint that
deduplicates (VictoriaMetrics with -dedup.minScrapeInterval=1ms, InfluxDB itself) stores every
point exactly once.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.daemon_process import DaemonProcess
from support.hostile_http import HostileWriteEndpoint
from support.influx_daemon import TINY_DEVICES, device_polls, devices_up, drained, influx_daemon
from support.servers import VictoriaMetricsServer, wait_until

from dcim.sim.child import SimulatorProcess

MAX_GAP_MS = 3500


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatorProcess]:
    simulator = SimulatorProcess.start("tiny", tmp_path / "sim.yaml")
    yield simulator
    simulator.stop()


def _daemon(tmp_path: Path, sim: SimulatorProcess, proxy: HostileWriteEndpoint) -> DaemonProcess:
    """dcim writing through the proxy with a 1 s write timeout and 2 s of backoff at most."""
    return influx_daemon(tmp_path, sim, proxy.url,
                         influxdb={"url": proxy.url, "org": "dcim", "bucket": "dcim", "token": "t",
                                   "flush_interval": "1s", "max_backoff": "2s", "timeout": "1s"})


def _gaps(stamps: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in itertools.pairwise(stamps) if b - a > MAX_GAP_MS]


def _retries(metrics: dict[str, float]) -> dict[str, float]:
    prefix = 'dcim_influx_write_retries_total{reason="'
    return {k[len(prefix):].split('"')[0]: v for k, v in metrics.items() if k.startswith(prefix)}


def test_refusing_and_hanging_endpoints_lose_and_duplicate_nothing(
        tmp_path: Path, sim: SimulatorProcess, victoria_metrics: VictoriaMetricsServer) -> None:
    proxy = HostileWriteEndpoint(victoria_metrics.url, retry_after="3600", max_body=1500)
    daemon = _daemon(tmp_path, sim, proxy)
    try:
        daemon.start()
        time.sleep(4)
        for mode, seconds in (("429", 8), ("413", 4), ("pass", 3), ("503", 6), ("hang", 6)):
            proxy.set_mode(mode)
            time.sleep(seconds)
            assert devices_up(daemon) == len(TINY_DEVICES), f"polling stopped during {mode}"
        # An hour of Retry-After did not stop delivery: dcim probed every max_backoff.
        assert proxy.requests["429"] >= 3
        assert proxy.requests["413"] >= 1  # the backlog of the 429 period, split until it fit
        proxy.set_mode("pass")
        wait_until(lambda: drained(daemon), 60, what="backlog written")
        retries = _retries(daemon.metrics())
        assert retries.keys() >= {"429", "503", "timeout"}, retries
        assert daemon.stop() == 0
    finally:
        daemon.close()
        proxy.stop()
    polls = device_polls(victoria_metrics)
    assert set(polls) == TINY_DEVICES
    for device, stamps in polls.items():
        assert len(stamps) == len(set(stamps)), f"{device}: a poll was written twice"
        assert _gaps(stamps) == [], f"{device}: polls missing"


def test_a_write_answered_late_is_resent_once_and_deduplicated(
        tmp_path: Path, sim: SimulatorProcess,
        victoria_metrics_factory: Callable[..., VictoriaMetricsServer]) -> None:
    plain = victoria_metrics_factory()
    dedup = victoria_metrics_factory(extra_args=["-dedup.minScrapeInterval=1ms"])
    # Every write is stored at once (in both) and answered 1.5 s later, past dcim's 1 s timeout.
    proxy = HostileWriteEndpoint(plain.url, dedup.url, mode="slow-204", delay=1.5)
    daemon = _daemon(tmp_path, sim, proxy)
    try:
        daemon.start()
        time.sleep(15)
        metrics = daemon.metrics()
        # A slow but successful endpoint: one timeout, then the timeout fits (4 x 1.5 s).
        assert _retries(metrics) == {"timeout": 1.0}
        assert metrics["dcim_influx_write_timeout_seconds"] >= 6.0
        proxy.set_mode("pass")
        wait_until(lambda: drained(daemon), 60, what="everything written")
        assert daemon.stop() == 0
    finally:
        daemon.close()
        proxy.stop()
    stored = device_polls(plain)
    once = device_polls(dedup)
    assert set(stored) == set(once) == TINY_DEVICES
    for device in TINY_DEVICES:
        duplicates = len(stored[device]) - len(set(stored[device]))
        # Only the first batch (the polls of the first second or two) went out twice...
        assert duplicates <= 3, f"{device}: {duplicates} polls stored twice"
        # ...with the same timestamps, so deduplication leaves every poll exactly once.
        assert once[device] == sorted(set(stored[device])), device
        assert _gaps(once[device]) == [], f"{device}: polls missing"
    assert sum(len(s) - len(set(s)) for s in stored.values()) >= 1  # the late answer did happen
