"""`dcim run` end to end: a real Prometheus scrapes the daemon polling the `tiny` simulator.

Also: fault injection through the control API, SIGHUP reloads, SIGTERM, the systemd notify
protocol over a real unix datagram socket, energy persisted across a restart, and the
start-up errors that must exit 2.
"""

from __future__ import annotations

import signal
import socket
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.daemon_process import DaemonProcess
from support.servers import PrometheusServer, wait_until

from dcim.sim.child import SimulatorProcess

FAST_POLLING = {"interval": "1s", "timeout": "400ms", "retries": 0, "max_age": "3s"}


@pytest.fixture
def tiny(tmp_path: Path) -> Iterator[SimulatorProcess]:
    """A tiny site whose world moves (energy counters count)."""
    sim = SimulatorProcess.start("tiny", tmp_path / "sim.yaml")
    yield sim
    sim.stop()


@pytest.fixture
def daemon_factory(tmp_path: Path) -> Iterator[Callable[..., DaemonProcess]]:
    made: list[DaemonProcess] = []

    def make(sim: SimulatorProcess, name: str = "dcim", **kwargs: Any) -> DaemonProcess:
        workdir = tmp_path / name
        workdir.mkdir()
        kwargs.setdefault("polling", FAST_POLLING)
        daemon = DaemonProcess(workdir, sim.config, **kwargs)
        made.append(daemon)
        return daemon

    yield make
    for daemon in made:
        daemon.close()


def _value(result: list[dict[str, Any]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])


def test_prometheus_sees_the_true_pue_and_rack_power(
        frozen_tiny: SimulatorProcess, daemon_factory: Callable[..., DaemonProcess],
        prometheus_factory: Callable[..., PrometheusServer]) -> None:
    daemon = daemon_factory(frozen_tiny)
    daemon.start()
    prom = prometheus_factory(targets=[daemon.address])
    truth = frozen_tiny.get("/truth")
    pue = _value(prom.wait_for("dcim_pue_ratio", timeout=30))
    assert pue == pytest.approx(truth["pue"], rel=1e-4)
    racks = prom.wait_for("dcim_rack_power_watts", lambda r: len(r) == len(truth["racks"]))
    for series in racks:
        rack = series["metric"]["rack"]
        assert float(series["value"][1]) == pytest.approx(truth["racks"][rack], rel=1e-4), rack
    assert _value(prom.query("dcim_facility_power_watts")) == pytest.approx(truth["facility_w"],
                                                                            rel=1e-4)
    assert _value(prom.query("dcim_pue_coverage_ratio")) == 1.0
    heat = prom.query("dcim_cdu_heat_removed_watts")
    for series in heat:
        cdu = series["metric"]["cdu"]
        assert float(series["value"][1]) == pytest.approx(truth["cdus"][cdu]["heat_w"], rel=1e-3)
    up = prom.query("dcim_device_up")
    assert {s["metric"]["device"] for s in up} == set(truth["devices"])
    assert all(s["value"][1] == "1" for s in up)
    assert prom.query('up{job="dcim"}')[0]["value"][1] == "1"


def test_failed_device_flips_up_and_withholds_pue(
        frozen_tiny: SimulatorProcess, daemon_factory: Callable[..., DaemonProcess],
        prometheus_factory: Callable[..., PrometheusServer]) -> None:
    daemon = daemon_factory(frozen_tiny)
    daemon.start()
    prom = prometheus_factory(targets=[daemon.address])
    prom.wait_for("dcim_pue_ratio")
    pdu = next(d for d in frozen_tiny.get("/truth")["devices"] if "pdu" in d)
    frozen_tiny.post(f"/devices/{pdu}/fail", {"mode": "timeout"})
    try:
        prom.wait_for(f'dcim_device_up{{device="{pdu}"}} == 0', timeout=20)
        prom.wait_for("absent(dcim_pue_ratio)", timeout=20)
        assert _value(prom.query(f'dcim_pue_input_missing{{device="{pdu}"}}')) == 1.0
        assert _value(prom.query("dcim_pue_coverage_ratio")) < 1.0
        assert _value(prom.query("dcim_pue_withheld")) == 1.0
        rack = pdu.split("-")[0]
        assert prom.query(f'dcim_rack_power_watts{{rack="{rack}"}}') == []
        errors = prom.wait_for(f'dcim_device_poll_errors_total{{device="{pdu}"}}')
        assert errors[0]["metric"]["kind"] == "timeout"
    finally:
        frozen_tiny.post(f"/devices/{pdu}/recover")
    prom.wait_for("dcim_pue_ratio", timeout=60)
    # The outage was logged once and the recovery once, not once per poll.
    log = daemon.log()
    assert log.count(f"{pdu} (") == 1 and log.count(f"{pdu} recovered") == 1


def _device_sample(metrics: dict[str, float], name: str, device: str) -> float | None:
    """The value of series `name` for one device, None when absent."""
    return next((v for k, v in metrics.items()
                 if k.startswith(name + "{") and f'device="{device}"' in k), None)


def _scrape_until(daemon: DaemonProcess, check: Callable[[dict[str, float]], bool],
                  timeout: float, what: str) -> dict[str, float]:
    """The first scrape that passes check."""
    def scrape() -> dict[str, float] | None:
        metrics = daemon.metrics()
        return metrics if check(metrics) else None
    return wait_until(scrape, timeout, what=what)


def test_a_failed_device_keeps_its_interval_and_recovers_at_the_next_poll(
        frozen_tiny: SimulatorProcess, daemon_factory: Callable[..., DaemonProcess]) -> None:
    """No backoff: a PDU failing six polls in a row is still polled every second, and its
    recovery shows at the next poll after it answers again (the 60 s backoff this replaced
    kept a recovered device down for up to a minute)."""
    interval = 1.0  # FAST_POLLING
    daemon = daemon_factory(frozen_tiny)
    daemon.start()
    pdu = next(d for d in frozen_tiny.get("/truth")["devices"] if "pdu" in d)
    metrics = _scrape_until(daemon, lambda m: _device_sample(m, "dcim_device_up", pdu) == 1.0,
                            timeout=20, what=f"{pdu} up")
    assert metrics["dcim_snmp_client_requests_total"] > 0
    frozen_tiny.post(f"/devices/{pdu}/fail", {"mode": "timeout"})
    try:
        # Six failures take six seconds; with the old backoff they took 32.
        metrics = _scrape_until(
            daemon, lambda m: (_device_sample(m, "dcim_device_poll_errors_total", pdu) or 0) >= 6,
            timeout=25, what=f"six failed polls of {pdu}")
        assert _device_sample(metrics, "dcim_device_up", pdu) == 0.0
        assert metrics["dcim_snmp_client_timeouts_total"] >= 6
        # The published next poll is at most one interval after the tick that published it.
        next_poll = _device_sample(metrics, "dcim_device_next_poll_timestamp_seconds", pdu)
        assert next_poll is not None
        assert next_poll - metrics["dcim_snapshot_timestamp_seconds"] <= interval + 1e-3
    finally:
        answered_again = time.time()
        frozen_tiny.post(f"/devices/{pdu}/recover")
    metrics = _scrape_until(daemon, lambda m: _device_sample(m, "dcim_device_up", pdu) == 1.0,
                            timeout=20, what=f"{pdu} up again")
    recovered = _device_sample(metrics, "dcim_device_last_success_timestamp_seconds", pdu)
    assert recovered is not None
    # The poll in flight when it answered again may still fail; the next one, an interval
    # later, succeeds (a second of slack for a busy host).
    assert recovered - answered_again < 2 * interval + 0.9, recovered - answered_again


def test_sighup_with_a_broken_config_keeps_the_old_one(
        frozen_tiny: SimulatorProcess, daemon_factory: Callable[..., DaemonProcess]) -> None:
    daemon = daemon_factory(frozen_tiny)
    daemon.start()
    wait_until(lambda: "dcim_pue_ratio" in daemon.metrics(), 20, what="PUE")
    good = daemon.config.read_text()
    daemon.config.write_text(good.replace("devices:", "devices:\n- {id: x, profile: nope}", 1))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "reload refused" in daemon.log(), 10, what="refusal logged")
    assert "devices[0].host: required" in daemon.log()
    time.sleep(2.5)
    metrics = daemon.metrics()
    assert "dcim_pue_ratio" in metrics  # still polling with the old config
    assert daemon.proc is not None and daemon.proc.poll() is None
    # A valid new config is taken: drop the CDU, it disappears from the metrics.
    data = yaml.safe_load(good)
    cdus = [d["id"] for d in data["devices"] if "cdu" in d["profile"]]
    data["devices"] = [d for d in data["devices"] if d["id"] not in cdus]
    daemon.config.write_text(yaml.safe_dump(data))
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in daemon.log(), 10, what="reload logged")
    wait_until(lambda: not any(cdus[0] in k for k in daemon.metrics()), 10, what="CDU gone")
    assert daemon.stop() == 0


def test_systemd_notify_and_sigterm(frozen_tiny: SimulatorProcess, tmp_path: Path,
                                    daemon_factory: Callable[..., DaemonProcess]) -> None:
    path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(10)
    daemon = daemon_factory(frozen_tiny, env={"NOTIFY_SOCKET": str(path),
                                              "WATCHDOG_USEC": "2000000"})
    daemon.start(wait=False)
    messages: list[str] = []

    def receive_until(text: str) -> None:
        while not any(text in m for m in messages):
            messages.append(sock.recv(4096).decode())

    receive_until("READY=1")
    ready = next(m for m in messages if "READY=1" in m)
    assert "STATUS=" in ready
    receive_until("WATCHDOG=1")
    messages.clear()
    receive_until("WATCHDOG=1")  # keeps petting the watchdog while the poll loop runs
    receive_until("STATUS=PUE")
    started = time.monotonic()
    assert daemon.stop() == 0
    assert time.monotonic() - started < 5
    receive_until("STOPPING=1")
    sock.close()


def _ledger(state_dir: Path, device: str) -> tuple[float, float]:
    with sqlite3.connect(state_dir / "state.db") as db:
        total, last_wh = db.execute("SELECT total_j, last_wh FROM device_energy WHERE device=?",
                                    (device,)).fetchone()
    return float(total), float(last_wh)


def test_restart_adds_exactly_the_energy_counted_while_stopped(
        tiny: SimulatorProcess, daemon_factory: Callable[..., DaemonProcess]) -> None:
    daemon = daemon_factory(tiny)
    truth = tiny.get("/truth")
    meter = next(iter(truth["meters"]))
    series = (f'dcim_device_energy_joules_total{{device="{meter}",method="counter",'
              f'site="{truth["site"]}"}}')
    daemon.start()
    wait_until(lambda: daemon.metrics().get(series, 0) > 0, 20, what="energy counting")
    assert daemon.stop() == 0
    state_dir = daemon.workdir / "state"
    total_1, wh_1 = _ledger(state_dir, meter)
    device_before = tiny.get(f"/devices/{meter}")["model"]["energy_wh"]
    time.sleep(6)  # dcim is down; the meter keeps counting
    device_after = tiny.get(f"/devices/{meter}")["model"]["energy_wh"]
    daemon.start()
    wait_until(lambda: daemon.metrics().get(series, 0) > total_1, 20, what="counting again")
    assert daemon.stop() == 0
    total_2, wh_2 = _ledger(state_dir, meter)
    # Exactly the counter's advance since the last reading before the stop: nothing lost,
    # nothing counted twice.
    assert total_2 - total_1 == pytest.approx((wh_2 - wh_1) * 3600, rel=1e-9)
    # The meter's register counts whole Wh, the simulator's model is exact: allow 1 Wh.
    assert wh_1 <= device_before + 1.0
    assert wh_2 >= device_after - 1.0
    downtime_wh = device_after - device_before
    assert downtime_wh > 0
    assert (wh_2 - wh_1) >= downtime_wh - 1.0


def _run(*args: str, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dcim", *args], capture_output=True, text=True,
                          timeout=60, **kwargs)


def test_listen_address_in_use_exits_2(frozen_tiny: SimulatorProcess,
                                       daemon_factory: Callable[..., DaemonProcess]) -> None:
    daemon = daemon_factory(frozen_tiny)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", daemon.port))
        taken.listen()
        proc = _run("run", "--config", str(daemon.config))
    assert proc.returncode == 2
    assert f"cannot listen on 127.0.0.1:{daemon.port}" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_corrupt_state_file_exits_2(frozen_tiny: SimulatorProcess,
                                    daemon_factory: Callable[..., DaemonProcess]) -> None:
    daemon = daemon_factory(frozen_tiny)
    state = daemon.workdir / "state"
    state.mkdir()
    (state / "state.db").write_bytes(b"\x00garbage" * 512)
    proc = _run("run", "--config", str(daemon.config))
    assert proc.returncode == 2
    assert "state.db" in proc.stderr and "move it aside" in proc.stderr


def test_invalid_config_exits_2(tmp_path: Path) -> None:
    config = tmp_path / "site.yaml"
    config.write_text("site: {name: x}\ndevices: [{id: a, profile: nope, host: h}]\n")
    proc = _run("run", "--config", str(config))
    assert proc.returncode == 2
    assert "devices[0].profile: unknown profile 'nope'" in proc.stderr


def test_landing_page_and_health(frozen_tiny: SimulatorProcess,
                                 daemon_factory: Callable[..., DaemonProcess]) -> None:
    from support.servers import http_request

    daemon = daemon_factory(frozen_tiny)
    daemon.start()
    wait_until(lambda: "dcim_pue_ratio" in daemon.metrics(), 20, what="PUE")
    status, body = http_request(f"http://{daemon.address}/")
    assert status == 200 and b"/metrics" in body and b"Live PUE" in body
    status, _ = http_request(f"http://{daemon.address}/-/healthy")
    assert status == 200
