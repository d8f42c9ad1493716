"""`dcim demo`: the simulated hall polled through dcim, shown live or as a plain snapshot."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from rich.console import Console

from dcim.compute import Snapshot, compute
from dcim.demo import DemoInfo, plain, problems, render
from dcim.profile import ProfileRegistry
from dcim.readings import PollResult, failed
from dcim.sim import presets, siteconfig
from dcim.sim.agents import Endpoint
from dcim.sim.world import World
from dcim.state import StateStore

T0 = 1_760_000_000.0
INFO = DemoInfo(control_url="http://127.0.0.1:1", config="/tmp/site.yaml", poll_seconds=1.5)


def _snapshot(leak: bool = False, down: tuple[str, ...] = ()) -> Snapshot:
    """A Snapshot of the tiny preset computed by dcim from the simulator's served values."""
    registry = ProfileRegistry.load()
    sim_site = presets.build("tiny", 1)
    endpoints = {d.id: Endpoint("127.0.0.1", 20000 + i) for i, d in enumerate(sim_site.devices)}
    site = siteconfig.check(siteconfig.render(sim_site, endpoints, registry), registry)
    world = World(sim_site, 1, registry, T0, frozen=True)
    if leak:
        world.apply({"action": "leak", "cdu": "cdu-1", "active": True})
    store = StateStore()
    for dev_id in site.devices:
        if dev_id in down:
            store.update(failed(dev_id, T0, 4.0, "timeout", "no answer within 2s"))
        else:
            store.update(PollResult(device=dev_id, time=T0, duration=0.01,
                                    values=world.device_view(dev_id)["points"]))
    return compute(site, store.view(), T0 + 1)


def _text(snapshot: Snapshot | None) -> str:
    console = Console(record=True, width=140, color_system=None)
    console.print(render(snapshot, INFO))
    return console.export_text()


def test_view_shows_pue_racks_and_cdus() -> None:
    snapshot = _snapshot()
    text = _text(snapshot)
    assert snapshot.pue.value is not None
    assert f"PUE {snapshot.pue.value:.3f}" in text and "target 1.25" in text
    assert "Racks nearest their cap" in text and "r01" in text and "r02" in text
    assert "cdu-1" in text and "°C" in text
    assert "Problems (0)" in text and INFO.control_url in text and INFO.config in text


def test_view_lists_active_problems() -> None:
    snapshot = _snapshot(leak=True, down=("main-1",))
    found = problems(snapshot)
    assert found[0].startswith("LEAK detected at cdu-1")
    assert any(p.startswith("PUE withheld") and "main-1" in p for p in found)
    assert any(p.startswith("device main-1 down (timeout)") for p in found)
    text = _text(snapshot)
    assert "PUE withheld" in text and "LEAK" in text and "Problems (3)" in text


def test_view_before_the_first_poll() -> None:
    assert "polling the simulated hall" in _text(None)


def test_plain_snapshot() -> None:
    text = plain(_snapshot(down=("r01-pdu-a",)), INFO)
    assert text.startswith("site sim-tiny: PUE withheld")
    assert "racks nearest their cap:" in text and "r02" in text
    assert "device r01-pdu-a down" in text


def _demo(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "dcim", "demo", *args], text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _control_url(first_line: str) -> str:
    # "simulated hall-18mw hall: control API http://127.0.0.1:PORT (GET /truth), config ..."
    return first_line.split("control API ", 1)[1].split()[0]


def _gone(url: str) -> bool:
    try:
        urllib.request.urlopen(url + "/truth", timeout=2)
    except (urllib.error.URLError, ConnectionError):
        return True
    return False


def test_demo_once_prints_a_plain_snapshot() -> None:
    proc = _demo("--once")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("simulated hall-18mw hall: control API http://127.0.0.1:")
    assert "site sim-hall-18mw: PUE 1.2" in out
    assert "status ok" in out and "coverage 100%" in out
    assert "racks nearest their cap:" in out and "cdu-12" in out
    assert "problems (0):" in out
    assert "Traceback" not in err
    assert _gone(_control_url(lines[0]))  # the simulator child was stopped


def test_demo_duration_without_a_terminal() -> None:
    started = time.monotonic()
    proc = _demo("--duration", "6", "--interval", "2")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.count("site sim-hall-18mw: PUE") >= 2
    assert time.monotonic() - started < 60


def test_demo_exits_cleanly_on_ctrl_c() -> None:
    proc = _demo("--interval", "2")
    assert proc.stdout is not None
    first = proc.stdout.readline()
    url = _control_url(first)
    for line in proc.stdout:  # wait for the first snapshot
        if line.startswith("site sim-hall-18mw"):
            break
    proc.send_signal(signal.SIGINT)
    try:
        rc = proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("dcim demo did not exit on SIGINT")
    assert rc == 0
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    assert _gone(url)
