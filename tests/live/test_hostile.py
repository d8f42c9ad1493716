"""`dcim run` against hostile inputs (tests/support/hostile_*.py): it keeps running, the other
devices keep their schedule, the bad one is down with the right error kind, nothing wrong is
published, memory and the log stay bounded.

- every hostile config and profile file on SIGHUP: refused, `path: message` logged, old config kept;
- 16 hostile SNMP and Modbus devices (one per mode) next to the simulated `tiny` site;
- another process holding the state database's write lock;
- slowloris clients of /metrics.
"""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from support.daemon_process import DaemonProcess
from support.hostile_files import HOSTILE_CONFIGS, hostile_profiles
from support.hostile_peers import ModbusResponder, SnmpResponder, SnmpValue
from support.profiles import modbus_fixture, modbus_words
from support.servers import http_request, wait_until
from support.snmprec import load_snmprec

from dcim.sim.child import SimulatorProcess
from dcim.sinks.prometheus import PrometheusSink

FAST_POLLING = {"interval": "1s", "timeout": "400ms", "retries": 0, "max_age": "3s"}
LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')
SNMP_FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "snmp"


@pytest.fixture
def daemon(frozen_tiny: SimulatorProcess, tmp_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(tmp_path, frozen_tiny.config, polling=FAST_POLLING)
    yield process
    process.close()


def _polls(daemon: DaemonProcess) -> float:
    return sum(v for k, v in daemon.metrics().items()
               if k.startswith("dcim_device_polls_total{"))


def test_sighup_with_any_hostile_file_keeps_the_running_config(daemon: DaemonProcess) -> None:
    daemon.start()
    wait_until(lambda: "dcim_pue_ratio" in daemon.metrics(), 20, what="PUE")
    good = daemon.config.read_bytes()
    profiles = daemon.workdir / "profiles"
    profiles.mkdir()
    # (name, config bytes, a profile file to put in profile_dirs or None, the line to log)
    cases = [(name, text, None, line.format(path=daemon.config))
             for name, (text, line) in HOSTILE_CONFIGS.items()]
    cases += [(f"profile {stem}", good + b"profile_dirs: [profiles]\n", (stem, text),
               f"{profiles / stem}.yaml: {message}")
              for stem, (text, message) in hostile_profiles().items()]
    for refused, (name, config, profile, line) in enumerate(cases, start=1):
        for old in profiles.iterdir():
            old.unlink()
        if profile is not None:
            (profiles / f"{profile[0]}.yaml").write_bytes(profile[1])
        daemon.config.write_bytes(config)
        before = _polls(daemon)
        daemon.signal(signal.SIGHUP)
        wait_until(lambda n=refused: daemon.log().count("reload refused") >= n,
                   20, what=f"{name} refused")
        assert line in daemon.log(), name
        assert daemon.proc is not None and daemon.proc.poll() is None, name
        # Still polling with the old config.
        wait_until(lambda b=before: _polls(daemon) > b, 10,
                   what=f"polling after {name}")
    assert "Traceback" not in daemon.log()
    daemon.config.write_bytes(good)
    daemon.signal(signal.SIGHUP)
    wait_until(lambda: "config reloaded" in daemon.log(), 10, what="reload of the good config")
    assert "dcim_pue_ratio" in daemon.metrics()
    assert daemon.stop() == 0


SNMP_MODES = ("garbage", "truncated", "huge-length", "wrong-id", "silent", "endless")
MODBUS_MODES = ("garbage", "truncated", "huge-length", "wrong-id", "silent", "endless")
# A slow device answers each request in 1.5 s, within its 2 s timeout: it must stay up
# (a poll of 3 SNMP requests takes 4.5 s, 2 Modbus blocks 3 s; retries 0).
SLOW = {"interval": "10s", "timeout": "2s"}


def _snmp_values(name: str) -> dict[str, SnmpValue]:
    records = load_snmprec(SNMP_FIXTURES / f"{name}.snmprec")
    return {oid: v for oid, v in records.items() if isinstance(v, int | bytes | str)}


@pytest.fixture
def hostile_site() -> Iterator[list[dict[str, Any]]]:
    """One hostile SNMP and one hostile Modbus device per mode; the devices to configure."""
    peers: list[SnmpResponder | ModbusResponder] = []
    devices: list[dict[str, Any]] = []
    apc = _snmp_values("apc-rpdu2")
    raritan = _snmp_values("raritan-px")
    sunspec = modbus_words(modbus_fixture("sunspec-meter"))
    for mode in (*SNMP_MODES, "slow"):
        peer = SnmpResponder(apc, mode, delay=1.5)
        peers.append(peer)
        devices.append({"id": f"snmp-{mode}", "profile": "apc-rpdu2", "host": peer.host,
                        "port": peer.port, **(SLOW if mode == "slow" else {})})
    # Decimal digits of -400: 10**400 W, which no float holds.
    overflow = {"1.3.6.1.4.1.13742.6.3.3.4.1.7.1.1.5": -400}
    peer = SnmpResponder(raritan, "overflow", overflow=overflow)
    peers.append(peer)
    devices.append({"id": "snmp-overflow", "profile": "raritan-px", "host": peer.host,
                    "port": peer.port})
    for mode in (*MODBUS_MODES, "slow"):
        peer = ModbusResponder(sunspec, mode, delay=1.5)
        peers.append(peer)
        devices.append({"id": f"modbus-{mode}", "profile": "sunspec-meter", "host": peer.host,
                        "port": peer.port, **(SLOW if mode == "slow" else {})})
    peer = ModbusResponder(sunspec, "overflow", overflow={("holding", 40092): 400})  # W_SF
    peers.append(peer)
    devices.append({"id": "modbus-overflow", "profile": "sunspec-meter", "host": peer.host,
                    "port": peer.port})
    yield devices
    for peer in peers:
        peer.stop()


def _series(metrics: dict[str, float], name: str, device: str) -> dict[str, float]:
    """The series of one device by their labels (`kind="x",...`), each once (parse_metrics
    also files them by sorted labels)."""
    out: dict[str, float] = {}
    for key, value in metrics.items():
        if key.startswith(name + "{") and f'device="{device}"' in key:
            out[",".join(f'{k}="{v}"' for k, v in sorted(LABEL.findall(key)))] = value
    return out


def test_hostile_devices_are_down_and_everything_else_keeps_its_schedule(
        frozen_tiny: SimulatorProcess, hostile_site: list[dict[str, Any]],
        tmp_path: Path) -> None:
    daemon = DaemonProcess(tmp_path, frozen_tiny.config, polling=FAST_POLLING,
                           devices=hostile_site)
    try:
        daemon.start()
        good = [d["id"] for d in yaml.safe_load(frozen_tiny.config.read_text())["devices"]]
        wait_until(lambda: "dcim_pue_ratio" in daemon.metrics(), 30, what="PUE")
        time.sleep(12)  # every slow device has had a full poll
        rss_1 = daemon.rss_bytes()
        first = daemon.metrics()
        time.sleep(15)
        second = daemon.metrics()
        rss_2 = daemon.rss_bytes()
        assert daemon.proc is not None and daemon.proc.poll() is None
        last = "dcim_device_last_success_timestamp_seconds"
        for device in good:
            (before,) = _series(first, last, device).values()
            (after,) = _series(second, last, device).values()
            assert after > before, f"{device} stopped polling"
        assert "dcim_pue_ratio" in second
        kinds: dict[str, set[str]] = {}
        for spec in hostile_site:
            device = spec["id"]
            (up,) = _series(second, "dcim_device_up", device).values()
            errors = _series(second, "dcim_device_poll_errors_total", device)
            kinds[device] = {k.split('kind="')[1].split('"')[0] for k in errors}
            if device.endswith("-slow"):
                assert up == 1.0, f"{device} answers every request in time: {kinds[device]}"
                continue
            if device.endswith("-overflow"):
                # Up, but the power nobody can hold is refused, not published.
                assert up == 1.0
                assert not _series(second, "dcim_device_power_watts", device)
                continue
            assert up == 0.0, device
            # Nothing a hostile device sent is published as a reading.
            assert not _series(second, "dcim_device_power_watts", device), device
        assert kinds == EXPECTED_KINDS, kinds
        # Memory stays bounded while 14 devices answer garbage every second.
        assert rss_2 - rss_1 < 20 * 1024 * 1024, (rss_1, rss_2)
        log = daemon.log()
        assert "Traceback" not in log
        assert max(len(line) for line in log.splitlines()) < 1000
        assert len(log) < 32 * 1024  # pymodbus' hex dumps are not let through
        for spec in hostile_site:
            if not spec["id"].endswith(("-slow", "-overflow")):
                assert log.count(f"{spec['id']} (") == 1, spec["id"]  # "down" logged once
        assert daemon.stop() == 0
    finally:
        daemon.close()


# SNMP datagrams that cannot be an answer (garbage, truncated or oversized frames) make a
# `protocol` error: the client drops them, waits for a real answer, and when none comes says
# the agent answered garbage. An answer to another request id is a timeout: a late answer to
# a request given up looks the same. Modbus: pymodbus drops bad frames unseen, so timeouts.
# A walk that never ends is cut by the poll deadline. The slow and overflow devices answer.
EXPECTED_KINDS: dict[str, set[str]] = {
    **{f"snmp-{mode}": {"protocol"} for mode in ("garbage", "truncated", "huge-length")},
    "snmp-wrong-id": {"timeout"}, "snmp-silent": {"timeout"},
    "snmp-endless": {"deadline"},
    **{f"modbus-{mode}": {"timeout"} for mode in MODBUS_MODES},
    "snmp-slow": set(), "snmp-overflow": set(), "modbus-slow": set(), "modbus-overflow": set(),
}


def test_a_locked_state_database_delays_saves_and_stops_nothing(daemon: DaemonProcess) -> None:
    daemon.start()
    wait_until(lambda: "dcim_pue_ratio" in daemon.metrics(), 20, what="PUE")
    # Another process (a backup, the sqlite3 shell) holds the write lock for 8 s.
    db = sqlite3.connect(daemon.workdir / "state" / "state.db", isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        wait_until(lambda: "cannot save energy (database is locked)" in daemon.log(), 10,
                   what="the failed save logged")
        before = _polls(daemon)
        time.sleep(8)
        assert daemon.proc is not None and daemon.proc.poll() is None
        assert _polls(daemon) > before
    finally:
        db.execute("ROLLBACK")
        db.close()
    wait_until(lambda: "energy saved again" in daemon.log(), 10, what="saves resumed")
    assert daemon.log().count("cannot save energy") == 1
    assert daemon.stop() == 0


def test_slowloris_clients_of_metrics_are_cut_off_and_scrapes_go_on() -> None:
    sink = PrometheusSink("127.0.0.1:0", header_timeout=1.0)
    sink.start()
    baseline = threading.active_count()
    clients: list[socket.socket] = []
    try:
        for i in range(60):
            client = socket.create_connection(("127.0.0.1", sink.port), timeout=5)
            if i % 2:
                client.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finishes
            clients.append(client)
        # One byte every 0.2 s keeps the socket timeout from ever firing: only the deadline does.
        trickled: set[int] = set()

        def all_closed() -> bool:
            for index, client in enumerate(clients):
                if index in trickled:
                    continue
                try:
                    client.setblocking(False)
                    if client.recv(1) == b"":
                        trickled.add(index)
                        continue
                except BlockingIOError:
                    pass
                except OSError:
                    trickled.add(index)
                    continue
                with contextlib.suppress(OSError):
                    client.sendall(b"X")
            time.sleep(0.2)
            return len(trickled) == len(clients)

        status, _ = http_request(f"http://127.0.0.1:{sink.port}/metrics", timeout=5)
        assert status == 200  # a real scrape is served while 60 slow clients hang on
        wait_until(all_closed, 20, what="every slowloris connection closed by the server")
        wait_until(lambda: threading.active_count() <= baseline + 2, 10,
                   what="their threads ended")
    finally:
        for client in clients:
            client.close()
        sink.stop()
