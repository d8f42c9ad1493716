"""`profile: auto` on a device that is down when `dcim run` starts: the daemon starts anyway,
polls the rest of the site, reports the device down as `unidentified`, and once it answers
identifies it (a config reload) and polls it with the profile its sysObjectID calls for."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml
from support.daemon_process import DaemonProcess, Metrics, sample
from support.profiles import SNMP_FIXTURES
from support.servers import SnmpsimServer, free_port, wait_until

from dcim.sim.child import SimulatorProcess

LATE = "late-pdu"




def test_a_down_auto_device_does_not_stop_the_site_and_is_identified_when_it_answers(
        tmp_path: Path, tiny: SimulatorProcess,
        snmpsim_factory: Callable[..., SnmpsimServer]) -> None:
    port = free_port("udp")  # nothing listens there yet
    config = yaml.safe_load(tiny.config.read_text())
    config.setdefault("credentials", {})["px1"] = {"snmp_version": "2c",
                                                   "community": "raritan-px1"}
    site = tmp_path / "site.yaml"
    site.write_text(yaml.safe_dump(config, sort_keys=False))
    workdir = tmp_path / "dcim"
    workdir.mkdir()
    daemon = DaemonProcess(
        workdir, site, polling={"interval": "2s", "timeout": "500ms", "retries": 0,
                                "max_age": "5s"},
        devices=[{"id": LATE, "profile": "auto", "host": "127.0.0.1", "port": port,
                  "credentials": "px1"}])
    try:
        checked = subprocess.run([sys.executable, "-m", "dcim", "check-config",
                                  str(daemon.config)], capture_output=True, text=True,
                                 timeout=60, check=False)
        assert checked.returncode == 0, checked.stderr
        assert "warning: devices[" in checked.stderr
        assert "profile not identified yet: no answer to sysObjectID" in checked.stderr
        daemon.start()
        others = [d["id"] for d in config["devices"]]

        def down_and_others_up() -> Metrics | None:
            m = daemon.metrics()
            assert isinstance(m, Metrics)
            errors = sample(m, "dcim_device_poll_errors_total", f'device="{LATE}"',
                             'kind="unidentified"')
            up = [sample(m, "dcim_device_up", f'device="{d}"') for d in others]
            return m if errors and errors >= 2 and all(u == 1.0 for u in up) else None

        metrics = wait_until(down_and_others_up, timeout=60, interval=1,
                             what="the unidentified device down, the others up")
        assert sample(metrics, "dcim_device_up", f'device="{LATE}"', 'profile="auto"') == 0.0
        assert "profile not identified yet: no answer to sysObjectID" in daemon.log()
        assert "polled as down until it answers" in daemon.log()

        agent = snmpsim_factory(SNMP_FIXTURES, start=False)
        agent.port = port  # the device comes up where the config says it is
        agent.start()

        def identified() -> Metrics | None:
            m = daemon.metrics()
            assert isinstance(m, Metrics)
            up = sample(m, "dcim_device_up", f'device="{LATE}"', 'profile="raritan-px1"')
            return m if up == 1.0 else None

        metrics = wait_until(identified, timeout=60, interval=1,
                             what="the device identified and polled once it answered")
        assert sample(metrics, "dcim_device_up", f'device="{LATE}"', 'profile="auto"') is None
        log = daemon.log()
        assert log.count(f"{LATE}: profile auto -> raritan-px1") == 1, log
        assert "config reloaded" in log
        assert daemon.stop() == 0
    finally:
        daemon.close()
