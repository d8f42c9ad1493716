"""`dcim run` writing to an InfluxDB v2 endpoint (VictoriaMetrics, or a hostile proxy before it),
and reading back what was stored: the exactly-once checks of the InfluxDB sink's live tests."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from dcim.sim.child import SimulatorProcess
from support.daemon_process import DaemonProcess
from support.servers import ExportedSeries, VictoriaMetricsServer

INTERVAL_S = 1.0
TINY_DEVICES = {"r01-pdu-a", "r01-pdu-b", "r02-pdu-a", "r02-pdu-b", "cdu-1", "main-1", "ups-1"}


def influx_daemon(workdir: Path, sim: SimulatorProcess, url: str, **sinks: Any) -> DaemonProcess:
    """`dcim run` on the simulator's site, 1 s polling, InfluxDB at url (sinks may override)."""
    influx = {"url": url, "org": "dcim", "bucket": "dcim", "token": "t",
              "flush_interval": "1s", "max_backoff": "2s"}
    return DaemonProcess(
        workdir, sim.config,
        polling={"interval": f"{INTERVAL_S}s", "timeout": "400ms", "retries": 0, "max_age": "5s"},
        sinks={"influxdb": influx, **sinks})


def devices_up(daemon: DaemonProcess) -> int:
    """How many devices dcim reports up."""
    # parse_metrics files each series twice (as exposed and by sorted labels): count devices.
    return len({re.search(r'device="([^"]*)"', k)[1]
                for k, v in daemon.metrics().items() if k.startswith("dcim_device_up{") and v == 1.0})


def drained(daemon: DaemonProcess) -> bool:
    """The backlog is written: writes succeed and nothing older than a flush or two waits.

    (queued == 0 would be flaky: with 1 s polling new points arrive every second, so the queue
    is empty only for moments that a scrape may never hit.)
    """
    m = daemon.metrics()
    return m.get("dcim_influx_up") == 1.0 and m["dcim_influx_oldest_unsent_age_seconds"] < 4.0


def device_polls(vm: VictoriaMetricsServer, devices: int = len(TINY_DEVICES)) -> dict[str, list[int]]:
    """Poll timestamps (ms) per device, as stored (duplicates kept), once dcim has stopped.

    Reads lag writes by a second or two, so read until the export stops changing for 3 s.
    """
    last: list[ExportedSeries] = []
    stable_since = time.monotonic()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        now = vm.export('{__name__="dcim_device_up"}')
        if now != last:
            last, stable_since = now, time.monotonic()
        elif len(now) == devices and time.monotonic() - stable_since >= 3.0:
            break
        time.sleep(0.3)
    return {s.metric["device"]: sorted(s.timestamps) for s in last}
