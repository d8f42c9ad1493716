"""End to end: `dcim run` polls the `tiny` simulator and writes to VictoriaMetrics' /api/v2/write
while the write endpoint goes away for 25 s (and, in the second test, dcim itself is killed -9
in the middle of the outage and started again).

What must hold: polling and /metrics carry on during the outage and show the backlog; after it,
every poll of every device is in the database exactly once (no duplicate timestamps) with no
gap longer than a few poll intervals, except the seconds dcim itself was dead; nothing that had
been spooled before the kill is lost.
"""

from __future__ import annotations

import itertools
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.daemon_process import DaemonProcess
from support.influx_daemon import INTERVAL_S, TINY_DEVICES, device_polls, devices_up, drained, influx_daemon
from support.servers import MosquittoServer, VictoriaMetricsServer, free_port, wait_until

from dcim.sim.child import SimulatorProcess

MAX_GAP_MS = 3.5 * INTERVAL_S * 1000  # interval plus jitter and a slow poll


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatorProcess]:
    simulator = SimulatorProcess.start("tiny", tmp_path / "sim.yaml")
    yield simulator
    simulator.stop()


@pytest.fixture
def daemon(tmp_path: Path, sim: SimulatorProcess,
           victoria_metrics: VictoriaMetricsServer) -> Iterator[DaemonProcess]:
    d = influx_daemon(tmp_path, sim, victoria_metrics.url)
    yield d
    d.close()


def _spooled_polls(path: Path) -> dict[str, set[int]]:
    """Poll timestamps (ms) per device of the dcim_device lines waiting in the spool file."""
    out: dict[str, set[int]] = {}
    with sqlite3.connect(path) as db:
        for (line,) in db.execute("SELECT line FROM points WHERE line LIKE 'dcim_device,%'"):
            tags, _, rest = line.partition(" ")
            if " up=" not in f" {rest}" and ",up=" not in rest:
                continue
            device = dict(t.split("=", 1) for t in tags.split(",")[1:])["device"]
            out.setdefault(device, set()).add(int(rest.rsplit(" ", 1)[1]))
    return out


def _gaps(stamps: list[int]) -> list[tuple[int, int]]:
    return [(a, b) for a, b in itertools.pairwise(stamps) if b - a > MAX_GAP_MS]


def test_endpoint_outage_loses_and_duplicates_nothing(daemon: DaemonProcess,
                                                      victoria_metrics: VictoriaMetricsServer) -> None:
    daemon.start()
    time.sleep(6)
    outage_start = time.time()
    victoria_metrics.stop()
    time.sleep(12)
    during = daemon.metrics()
    assert during["dcim_influx_points_queued"] > 0
    assert during["dcim_influx_up"] == 0.0
    assert during["dcim_influx_oldest_unsent_age_seconds"] > 5
    assert devices_up(daemon) == 7  # polling carries on
    time.sleep(13)
    outage_end = time.time()
    victoria_metrics.start()
    wait_until(lambda: drained(daemon), 60, what="spool drained after the outage")
    assert daemon.stop() == 0

    polls = device_polls(victoria_metrics)
    assert set(polls) == TINY_DEVICES
    for device, stamps in polls.items():
        assert len(stamps) == len(set(stamps)), f"{device}: a poll was written twice"
        assert _gaps(stamps) == [], f"{device}: polls missing"
        inside = [t for t in stamps if outage_start * 1000 <= t <= outage_end * 1000]
        assert len(inside) >= (outage_end - outage_start) / INTERVAL_S * 0.7, device


def test_kill9_mid_outage_resends_only_unsent(daemon: DaemonProcess,
                                              victoria_metrics: VictoriaMetricsServer) -> None:
    daemon.start()
    time.sleep(5)
    victoria_metrics.stop()
    time.sleep(10)
    assert daemon.metrics()["dcim_influx_points_queued"] > 0
    killed_at = time.time()
    daemon.kill9()
    spooled = _spooled_polls(daemon.workdir / "state" / "influx-spool.db")
    assert spooled, "the outage left points in the spool"
    time.sleep(5)  # dead longer than MAX_GAP_MS, so the gap is unmistakable
    restarted_at = time.time()
    daemon.start()
    time.sleep(8)
    victoria_metrics.start()
    wait_until(lambda: drained(daemon), 60, what="spool drained after restart")
    assert daemon.stop() == 0

    polls = device_polls(victoria_metrics)
    for device, stamps in polls.items():
        assert len(stamps) == len(set(stamps)), f"{device}: a poll was written twice"
        # Everything that was on disk when dcim was killed arrived, exactly.
        assert spooled[device] <= set(stamps), f"{device}: spooled polls lost"
        gaps = _gaps(stamps)
        # the only gap is the time dcim was dead
        assert len(gaps) == 1, f"{device}: gaps {gaps}"
        before, after = gaps[0]
        # Only what was still in memory (the writer spools every 0.5 s) died with the process.
        assert before >= (killed_at - 5.0) * 1000, device
        assert after <= (restarted_at + 6.0) * 1000, device


def test_bad_endpoints_never_stop_polling(tmp_path: Path, sim: SimulatorProcess,
                                          victoria_metrics: VictoriaMetricsServer,
                                          mosquitto_factory: Any) -> None:
    """Unreachable InfluxDB, a broker refusing the password, an unusable spool path: dcim polls,
    serves /metrics, exports each problem and logs it once."""
    broker: MosquittoServer = mosquitto_factory(users={"dcim": "right"})
    (tmp_path / "not-a-dir").write_text("x")
    d = influx_daemon(tmp_path, sim, victoria_metrics.url,
                      influxdb={"url": f"http://127.0.0.1:{free_port()}", "org": "o",
                                "bucket": "b", "token": "t", "flush_interval": "1s",
                                "max_backoff": "2s",
                                "spool": str(tmp_path / "not-a-dir" / "spool.db")},
                      mqtt={"host": broker.host, "port": broker.port, "username": "dcim",
                            "password": "s3cret-xyz", "dsx": True})
    try:
        d.start()
        time.sleep(8)
        m = d.metrics()
        assert devices_up(d) == 7
        assert m["dcim_influx_up"] == 0.0 and m["dcim_influx_spool_failed"] == 1.0
        assert m["dcim_influx_points_queued"] > 0
        assert m["dcim_mqtt_auth_failed"] == 1.0
        assert m["dcim_pue_ratio"] > 1.0
        assert d.stop() == 0
    finally:
        d.close()
    log = d.log()
    assert log.count("cannot reach influxdb") == 1
    assert log.count("spool unavailable") == 1
    assert log.count("refused the credentials") == 1
    assert "s3cret-xyz" not in log


def test_sighup_fixing_the_url_delivers_the_backlog(tmp_path: Path, sim: SimulatorProcess,
                                                   victoria_metrics: VictoriaMetricsServer) -> None:
    """A wrong InfluxDB URL corrected in the config and reloaded: the sink restarts on the new
    URL and sends what it spooled under the old one; polling never stops."""
    d = influx_daemon(tmp_path, sim, victoria_metrics.url,
                      influxdb={"url": f"http://127.0.0.1:{free_port()}", "org": "dcim",
                                "bucket": "dcim", "token": "t", "flush_interval": "1s",
                                "max_backoff": "2s"})
    try:
        d.start()
        started_at = time.time()
        time.sleep(6)
        assert d.metrics()["dcim_influx_up"] == 0.0
        spooled = _spooled_polls(tmp_path / "state" / "influx-spool.db")
        assert spooled, "the wrong URL left points in the spool"
        data = yaml.safe_load(d.config.read_text())
        data["sinks"]["influxdb"]["url"] = victoria_metrics.url
        d.config.write_text(yaml.safe_dump(data, sort_keys=False))
        d.signal(signal.SIGHUP)
        wait_until(lambda: "restarted influxdb" in d.log(), 10, what="influxdb sink restarted on reload")
        wait_until(lambda: drained(d), 60, what="backlog written after the reload")
        assert devices_up(d) == 7
        assert d.stop() == 0
    finally:
        d.close()
    polls = device_polls(victoria_metrics)
    assert len(polls) == 7
    for device, stamps in polls.items():
        assert len(stamps) == len(set(stamps)), f"{device}: a poll was written twice"
        assert spooled[device] <= set(stamps), f"{device}: polls spooled before the reload lost"
        assert _gaps(stamps) == [], f"{device}: polls missing around the reload"
        assert stamps[0] <= (started_at + 3.0) * 1000, device
