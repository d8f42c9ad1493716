"""`dcim run` on the tiny simulator with a tenant: its live series, the interval ledger in
state.db filling while the daemon runs, and `dcim report` reading it meanwhile (WAL)."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from support.daemon_process import DaemonProcess
from support.servers import wait_until

from dcim.compute.tenants import INTERVAL_S, interval_of
from dcim.sim.child import SimulatorProcess

FAST_POLLING = {"interval": "1s", "timeout": "400ms", "retries": 0, "max_age": "3s"}


@pytest.fixture
def tenant_daemon(tmp_path: Path) -> Iterator[DaemonProcess]:
    sim = SimulatorProcess.start("tiny", tmp_path / "sim.yaml")
    data = yaml.safe_load(sim.config.read_text())
    data["tenants"] = {"acme": {"name": "Acme AI", "contract_kw": 100, "billing": {
        "model": "committed", "price_per_kwh": 0.085, "currency": "USD"}}}
    data["racks"][0]["tenant"] = "acme"  # r01; r02 stays unassigned
    config = tmp_path / "tenant-site.yaml"
    config.write_text(yaml.safe_dump(data, sort_keys=False))
    workdir = tmp_path / "dcim"
    workdir.mkdir()
    daemon = DaemonProcess(workdir, config, polling=FAST_POLLING)
    try:
        yield daemon
    finally:
        daemon.close()
        sim.stop()


def _rows(db: Path, bucket: str) -> list[tuple[int, float, int]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        return conn.execute("SELECT start, joules, devices FROM interval_energy WHERE bucket = ?",
                            (bucket,)).fetchall()


def test_tenant_series_ledger_and_report_while_running(tenant_daemon: DaemonProcess) -> None:
    daemon = tenant_daemon
    daemon.start()
    labels = 'site="sim-tiny",tenant="acme"'
    metrics = wait_until(
        lambda: (m := daemon.metrics()).get(f"dcim_tenant_it_energy_joules_total{{{labels}}}", 0)
        > 0 and f"dcim_tenant_power_watts{{{labels}}}" in m and m, timeout=60,
        what="tenant energy counting")
    rack = next(v for k, v in metrics.items()
                if k.startswith("dcim_rack_power_watts{") and 'rack="r01"' in k)
    assert metrics[f"dcim_tenant_power_watts{{{labels}}}"] == pytest.approx(rack, rel=0.05)
    assert metrics[f"dcim_tenant_contract_watts{{{labels}}}"] == 100_000
    assert metrics['dcim_unassigned_racks{site="sim-tiny"}'] == 1
    assert metrics[f"dcim_tenant_missing_racks{{{labels}}}"] == 0

    db = daemon.workdir / "state" / "state.db"
    rows = wait_until(lambda: [r for r in _rows(db, "tenant:acme") if r[1] > 0], timeout=30,
                      what="interval rows for acme")
    assert all(devices == 2 for _, _, devices in rows)  # r01's A and B PDUs
    assert _rows(db, "unassigned")

    now = time.time()
    start = interval_of(now) - INTERVAL_S
    iso = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))  # noqa: E731
    out = subprocess.run(
        [sys.executable, "-m", "dcim", "report", "--config", str(daemon.config),
         "--from", iso(start), "--to", iso(start + 2 * INTERVAL_S), "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    [acme] = report["tenants"]
    # The one ended interval is from before dcim started (or the one it started in): incomplete,
    # nothing made up; the running interval is not reported yet.
    assert acme["tenant"] == "acme" and acme["intervals"] == 1
    assert acme["incomplete_ratio"] == 1.0 and acme["peak_kw"] is None
    assert daemon.stop() == 0
