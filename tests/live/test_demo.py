"""`dcim demo`: the simulated hall polled through dcim, shown live or as a plain snapshot."""

from __future__ import annotations

import fcntl
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest
from rich.console import Console

from dcim.compute import Snapshot, compute
from dcim.demo import QUIT_KEYS, QUIT_SIGNAL, DemoInfo, plain, problems, render
from dcim.profile import ProfileRegistry
from dcim.readings import PollResult, failed
from dcim.sim import presets, siteconfig
from dcim.sim.agents import Endpoint
from dcim.sim.world import World
from dcim.state import latest

T0 = 1_760_000_000.0
INFO = DemoInfo(control_url="http://127.0.0.1:1", config="/tmp/site.yaml", median_poll_s=0.004,
                slowest_poll_s=0.0725, quit_hint=QUIT_KEYS)


def _snapshot(leak: bool = False, down: tuple[str, ...] = ()) -> Snapshot:
    """A Snapshot of the tiny preset computed by dcim from the simulator's served values."""
    registry = ProfileRegistry.load()
    sim_site = presets.build("tiny", 1)
    endpoints = {d.id: Endpoint("127.0.0.1", 20000 + i) for i, d in enumerate(sim_site.devices)}
    site = siteconfig.check(siteconfig.render(sim_site, endpoints, registry), registry)
    world = World(sim_site, 1, registry, T0, frozen=True)
    if leak:
        world.apply({"action": "leak", "cdu": "cdu-1", "active": True})
    results = [failed(dev_id, T0, 4.0, "timeout", "no answer within 2s") if dev_id in down
               else PollResult(device=dev_id, time=T0, duration=0.01,
                               values=world.device_view(dev_id)["points"])
               for dev_id in site.devices]
    return compute(site, latest(results), T0 + 1)


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
    assert "polls: median 4 ms, slowest 72 ms" in text  # poll times in ms
    assert "q or Ctrl-C to quit" in text


def test_view_lists_active_problems() -> None:
    snapshot = _snapshot(leak=True, down=("main-1",))
    found = problems(snapshot)
    assert found[0].startswith("LEAK detected at cdu-1")
    assert any(p.startswith("PUE withheld") and "main-1" in p for p in found)
    assert any(p.startswith("device main-1 down (timeout)") for p in found)
    text = _text(snapshot)
    assert "PUE withheld" in text and "LEAK" in text and "Problems (3)" in text


def test_view_before_the_first_poll() -> None:
    text = _text(None)
    assert "polling the simulated hall" in text and "q or Ctrl-C to quit" in text


def test_plain_snapshot() -> None:
    text = plain(_snapshot(down=("r01-pdu-a",)), INFO)
    assert text.startswith("site sim-tiny: PUE withheld")
    assert "racks nearest their cap:" in text and "r02" in text
    assert "device r01-pdu-a down" in text
    assert "polls: median 4 ms, slowest 72 ms" in text
    assert text.endswith("; q or Ctrl-C to quit")
    once = plain(_snapshot(), DemoInfo("http://127.0.0.1:1", "/tmp/site.yaml", quit_hint=None))
    assert "quit" not in once and "polls:" not in once  # --once ends by itself


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


def _exit_code(proc: subprocess.Popen[str], what: str, timeout: float = 60) -> int:
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail(f"dcim demo did not quit on {what}")


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
    assert re.search(r"^polls: median \d+ ms, slowest [\d,]+ ms$", out, re.MULTILINE)
    assert "to quit" not in out
    assert "Traceback" not in err
    assert _gone(_control_url(lines[0]))  # the simulator child was stopped


def test_demo_duration_without_a_terminal() -> None:
    started = time.monotonic()
    proc = _demo("--duration", "6", "--interval", "2")
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    assert out.count("site sim-hall-18mw: PUE") >= 2
    # stdin is not a terminal here: no key can be read, so the demo names the signal
    assert out.splitlines()[0].endswith(f"; {QUIT_SIGNAL}")
    assert out.count(f"; {QUIT_SIGNAL}\n") >= 3
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
    assert _exit_code(proc, "SIGINT") == 0
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    assert _gone(url)


# --- in a terminal: `q` quits ---------------------------------------------------------------


class Terminal:
    """A pseudo-terminal the demo runs in; everything it writes is kept in `output`."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 140, 0, 0))
        self.settings = termios.tcgetattr(self.slave)
        self.output = ""

    def read(self, timeout: float) -> None:
        """Read what arrives within timeout (the demo blocks if nobody drains the terminal)."""
        ready, _, _ = select.select([self.master], [], [], timeout)
        if ready:
            try:
                self.output += os.read(self.master, 65536).decode(errors="replace")
            except OSError:  # the child closed its side
                time.sleep(timeout)

    def wait_for(self, text: str, proc: subprocess.Popen[str], timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while text not in self.output:
            assert proc.poll() is None, f"demo exited early: {self.output[-2000:]}"
            assert time.monotonic() < deadline, f"no {text!r} in: {self.output[-2000:]}"
            self.read(0.5)

    def wait_exit(self, proc: subprocess.Popen[str], timeout: float = 60) -> int:
        deadline = time.monotonic() + timeout
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"dcim demo did not quit: {self.output[-2000:]}")
            self.read(0.2)
        return proc.returncode

    def close(self) -> None:
        os.close(self.master)
        os.close(self.slave)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    term = Terminal()
    try:
        yield term
    finally:
        term.close()


def _demo_in(term: Terminal, stdout: int | None) -> subprocess.Popen[str]:
    """The demo with the terminal as stdin and controlling terminal (stdout: it too, or a pipe)."""
    def take_terminal() -> None:
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "140", "LINES": "50"}
    return subprocess.Popen(
        [sys.executable, "-m", "dcim", "demo", "--interval", "2"], text=True, env=env,
        stdin=term.slave, stdout=term.slave if stdout is None else stdout,
        stderr=subprocess.PIPE, start_new_session=True, preexec_fn=take_terminal)


def _url_in(output: str) -> str:
    match = re.search(r"control API (http://127\.0\.0\.1:\d+)", output)
    assert match, output[-2000:]
    return match.group(1)


def test_live_view_quits_on_q_and_restores_the_terminal(terminal: Terminal) -> None:
    proc = _demo_in(terminal, None)
    terminal.wait_for("dcim demo: sim-hall-18mw", proc)  # the live view, first snapshot in
    terminal.wait_for(QUIT_KEYS, proc)
    assert "polls: median" in terminal.output and " ms" in terminal.output
    url = _url_in(terminal.output)
    os.write(terminal.master, b"q")
    assert terminal.wait_exit(proc) == 0
    assert "Traceback" not in (proc.stderr.read() if proc.stderr else "")
    assert termios.tcgetattr(terminal.slave) == terminal.settings  # cbreak mode undone
    assert _gone(url)


def test_live_view_quits_on_ctrl_c_typed_in_the_terminal(terminal: Terminal) -> None:
    proc = _demo_in(terminal, None)
    terminal.wait_for("dcim demo: sim-hall-18mw", proc)
    url = _url_in(terminal.output)
    os.write(terminal.master, b"\x03")  # the terminal turns it into SIGINT (ISIG stays on)
    assert terminal.wait_exit(proc) == 0
    assert termios.tcgetattr(terminal.slave) == terminal.settings
    assert _gone(url)


def test_plain_output_quits_on_q_typed_in_the_terminal(terminal: Terminal) -> None:
    proc = _demo_in(terminal, subprocess.PIPE)  # output to a pipe: plain snapshots
    assert proc.stdout is not None
    first = proc.stdout.readline()
    assert first.rstrip().endswith(f"; {QUIT_KEYS}")
    for line in proc.stdout:
        if line.startswith("control API"):  # the end of the first plain snapshot
            assert line.rstrip().endswith(f"; {QUIT_KEYS}")
            break
    os.write(terminal.master, b"q")
    assert _exit_code(proc, "q") == 0
    assert termios.tcgetattr(terminal.slave) == terminal.settings
    assert _gone(_control_url(first))
