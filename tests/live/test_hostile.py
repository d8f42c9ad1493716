"""`dcim run` against hostile inputs (tests/support/hostile_*.py): it keeps running, the other
devices keep their schedule, the bad one is down with the right error kind, nothing wrong is
published."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.daemon_process import DaemonProcess
from support.hostile_files import HOSTILE_CONFIGS, hostile_profiles
from support.servers import wait_until

from dcim.sim.child import SimulatorProcess

FAST_POLLING = {"interval": "1s", "timeout": "400ms", "retries": 0, "max_age": "3s"}


@pytest.fixture(scope="module")
def frozen_tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    """The tiny site held at one instant."""
    workdir = tmp_path_factory.mktemp("sim")
    sim = SimulatorProcess.start("tiny", workdir / "sim.yaml", extra=("--frozen",))
    yield sim
    sim.stop()


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
