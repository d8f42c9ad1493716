"""`dcim demo`: the simulated hall-18mw served on loopback, the daemon polling it, a live view.

The view renders the daemon's latest `Snapshot` (plus the simulator's truth beside it): PUE
against target, power, the racks nearest their cap, CDUs and active problems. It quits on
`q` (when stdin is a terminal), Ctrl-C or SIGTERM, and every output mode says so.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from dcim.compute import Snapshot
from dcim.tasks import CANCEL_WAIT_S, cancel_and_wait

TOP_RACKS = 12
QUIT_KEYS = "q or Ctrl-C to quit"
QUIT_SIGNAL = "Ctrl-C to quit"  # stdin is not a terminal: no key to read


@dataclass(frozen=True)
class DemoInfo:
    """Where things are and how the polls went, shown with the view."""

    control_url: str
    config: str
    median_poll_s: float | None = None
    slowest_poll_s: float | None = None
    truth: Mapping[str, Any] | None = None
    quit_hint: str | None = QUIT_SIGNAL  # None: the demo ends by itself (--once)


def _kw(watts: float | None) -> str:
    if watts is None:
        return "n/a"
    return f"{watts / 1e6:,.2f} MW" if watts >= 1e6 else f"{watts / 1e3:,.1f} kW"


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:,.0f} ms"


def _polls(info: DemoInfo) -> str:
    if info.median_poll_s is None or info.slowest_poll_s is None:
        return ""
    return f"polls: median {_ms(info.median_poll_s)}, slowest {_ms(info.slowest_poll_s)}"


def _temp(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f} °C"


def problems(snapshot: Snapshot) -> list[str]:
    """Active problems, most urgent first: leaks, PUE withheld, devices down, racks at risk."""
    out = [f"LEAK detected at {c.id} (racks {', '.join(c.racks)})"
           for c in snapshot.cdus.values() if c.leak]
    pue = snapshot.pue
    if pue.value is None:
        why = pue.reason or pue.status
        missing = f": missing {', '.join(pue.missing)}" if pue.missing else ""
        out.append(f"PUE withheld ({why}){missing}")
    for dev in snapshot.devices.values():
        if not dev.up and dev.last_poll is not None:
            out.append(f"device {dev.id} down ({dev.error_kind}): {dev.error}")
    for rack in snapshot.racks.values():
        if rack.failover_risk:
            out.append(f"rack {rack.id} would overload one feed if the other failed "
                       f"({_kw(rack.power_w)} > {_kw(rack.feed_capacity_w)})")
        if rack.power_w is not None and rack.power_w > rack.cap_w:
            out.append(f"rack {rack.id} above its cap ({_kw(rack.power_w)} > {_kw(rack.cap_w)})")
    return out


def _pue_style(value: float | None, target: float | None) -> str:
    if value is None:
        return "bold red"
    if target is None or value <= target:
        return "bold green"
    return "bold yellow" if value <= target + 0.05 else "bold red"


def _header(snapshot: Snapshot, info: DemoInfo) -> Panel:
    pue = snapshot.pue
    text = Text()
    text.append("PUE ")
    text.append("withheld" if pue.value is None else f"{pue.value:.3f}",
                _pue_style(pue.value, pue.target))
    if pue.target:
        text.append(f"  target {pue.target:g}")
    if info.truth and info.truth.get("pue"):
        text.append(f"  (simulator truth {info.truth['pue']:.3f})", "dim")
    text.append(f"\nfacility {_kw(pue.facility_w)}   IT {_kw(pue.it_w)}   "
                f"coverage {pue.coverage:.0%}   status {pue.status}")
    oh = snapshot.overhead
    if oh.cooling_w is not None or oh.ups_loss_w is not None:
        text.append(f"\ncooling {_kw(oh.cooling_w)}   UPS losses {_kw(oh.ups_loss_w)}   "
                    f"other {_kw(oh.other_w)}")
    when = datetime.fromtimestamp(snapshot.time).strftime("%H:%M:%S")
    polls = _polls(info)
    return Panel(text, title=f"dcim demo: {snapshot.site}",
                 subtitle=f"computed {when}" + (f", {polls}" if polls else ""))


def _racks(snapshot: Snapshot) -> Table:
    table = Table(title="Racks nearest their cap", expand=True)
    table.add_column("rack")
    table.add_column("power", justify="right")
    table.add_column("of cap", ratio=1)
    table.add_column("%", justify="right")
    table.add_column("A / B", justify="right")
    racks = sorted(snapshot.racks.values(), key=lambda r: r.utilization or 0.0, reverse=True)
    for r in racks[:TOP_RACKS]:
        util = r.utilization or 0.0
        style = "red" if util >= 0.95 else "yellow" if util >= 0.85 else "green"
        feeds = " / ".join(_kw(r.feeds.get(f)) for f in sorted(r.feeds))
        table.add_row(r.id, _kw(r.power_w),
                      ProgressBar(total=1.0, completed=min(util, 1.0), complete_style=style),
                      f"{util:.0%}" if r.utilization is not None else "n/a", feeds)
    return table


def _cdus(snapshot: Snapshot) -> Table:
    table = Table(title="CDUs (secondary loop)", expand=True)
    for col in ("cdu", "supply", "return", "ΔT", "flow", "heat", "capture", "leak"):
        table.add_column(col, justify="left" if col == "cdu" else "right")
    for c in snapshot.cdus.values():
        table.add_row(
            c.id, _temp(c.supply_c), _temp(c.return_c),
            "n/a" if c.delta_t is None else f"{c.delta_t:.1f} K",
            "n/a" if c.flow_lpm is None else f"{c.flow_lpm:,.0f} L/min", _kw(c.heat_w),
            "n/a" if c.capture_ratio is None else f"{c.capture_ratio:.0%}",
            Text("LEAK", "bold red") if c.leak else Text("no" if c.leak is False else "n/a"),
        )
    return table


def render(snapshot: Snapshot | None, info: DemoInfo) -> RenderableType:
    """The whole live view for one snapshot (a waiting screen before the first one)."""
    footer = Text(f"control API {info.control_url}   config {info.config}", "dim")
    if info.quit_hint:
        footer.append(f"   {info.quit_hint}", "bold")
    if snapshot is None:
        return Group(Panel("polling the simulated hall ...", title="dcim demo"), footer)
    found = problems(snapshot)
    issues = Text("\n".join(found), "red") if found else Text("none", "green")
    return Group(_header(snapshot, info), _racks(snapshot), _cdus(snapshot),
                 Panel(issues, title=f"Problems ({len(found)})"), footer)


def plain(snapshot: Snapshot, info: DemoInfo) -> str:
    """The same picture as plain text, for --once and non-terminal output."""
    pue = snapshot.pue
    value = "withheld" if pue.value is None else f"{pue.value:.3f}"
    lines = [f"site {snapshot.site}: PUE {value}"
             + (f" (target {pue.target:g})" if pue.target else "")
             + (f", simulator truth {info.truth['pue']:.3f}" if info.truth and
                info.truth.get("pue") else ""),
             f"facility {_kw(pue.facility_w)}, IT {_kw(pue.it_w)}, coverage {pue.coverage:.0%}, "
             f"status {pue.status}"]
    if polls := _polls(info):
        lines.append(polls)
    lines.append("racks nearest their cap:")
    racks = sorted(snapshot.racks.values(), key=lambda r: r.utilization or 0.0, reverse=True)
    for r in racks[:TOP_RACKS]:
        util = r.utilization or 0.0
        bar = "#" * round(util * 20)
        lines.append(f"  {r.id:<8} {_kw(r.power_w):>10} [{bar:<20}] {util:4.0%}")
    lines.append("CDUs:")
    for c in snapshot.cdus.values():
        lines.append(f"  {c.id:<8} supply {_temp(c.supply_c)}, return {_temp(c.return_c)}, "
                     f"heat {_kw(c.heat_w)}{', LEAK' if c.leak else ''}")
    found = problems(snapshot)
    lines.append(f"problems ({len(found)}):")
    lines += [f"  {p}" for p in found] or ["  none"]
    lines.append(f"control API {info.control_url}, config {info.config}"
                 + (f"; {info.quit_hint}" if info.quit_hint else ""))
    return "\n".join(lines)


@contextlib.contextmanager
def quit_key(loop: asyncio.AbstractEventLoop, stdin: TextIO,
             on_quit: Callable[[], None]) -> Iterator[str]:
    """Call on_quit when q is pressed; yields the hint that says how to quit.

    A terminal stdin is put in cbreak mode (keys arrive unbuffered, unechoed; Ctrl-C still
    sends SIGINT) and restored on exit; any other stdin is left alone.
    """
    try:
        fd = stdin.fileno()
        interactive = os.isatty(fd)
    except (AttributeError, OSError, ValueError):  # no real file behind stdin
        interactive = False
    if not interactive:
        yield QUIT_SIGNAL
        return
    import termios
    import tty

    saved = termios.tcgetattr(fd)
    tty.setcbreak(fd)

    def on_key() -> None:
        keys = os.read(fd, 64)
        if not keys:  # the terminal hung up
            loop.remove_reader(fd)
            on_quit()
        elif b"q" in keys.lower():
            on_quit()

    loop.add_reader(fd, on_key)
    try:
        yield QUIT_KEYS
    finally:
        loop.remove_reader(fd)
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


DEMO_PRESET = "hall-18mw"


def run_demo(duration: float | None = None, once: bool = False, seed: int = 1,
             interval: float = 5.0, out: TextIO = sys.stdout) -> int:
    """Start the hall-18mw simulator as a child, run the daemon against it, show it live."""
    import shutil
    import tempfile

    from dcim.sim.child import SimulatorFailed, SimulatorProcess

    workdir = Path(tempfile.mkdtemp(prefix="dcim-demo-"))
    config = workdir / f"{DEMO_PRESET}.yaml"
    try:
        sim = SimulatorProcess.start(DEMO_PRESET, config, seed)
    except SimulatorFailed as exc:
        shutil.rmtree(workdir, ignore_errors=True)
        print(f"dcim demo: {exc}", file=sys.stderr)
        return 1
    try:
        return asyncio.run(_demo(sim, config, workdir, duration, once, interval, out))
    except KeyboardInterrupt:
        return 0
    finally:
        sim.stop()
        shutil.rmtree(workdir, ignore_errors=True)


async def _demo(sim: Any, config: Path, workdir: Path, duration: float | None, once: bool,
                interval: float, out: TextIO) -> int:
    """Run the daemon (the real code path: scheduler, drivers, compute) and render its snapshots."""
    from rich.console import Console
    from rich.live import Live

    from dcim.daemon.runtime import Daemon

    loop = asyncio.get_running_loop()
    daemon = Daemon(config, listen="127.0.0.1:0", state_dir=workdir, signals=False)
    task = asyncio.create_task(daemon.run())
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, daemon.stop)
    truth: dict[str, Any] | None = None
    restore = contextlib.ExitStack()  # the terminal, when `q` is read from it
    hint = restore.enter_context(quit_key(loop, sys.stdin, daemon.stop))

    def info() -> DemoInfo:
        snap = daemon.published.snapshot if daemon.published else None
        durations = [d.poll_duration for d in snap.devices.values()
                     if d.poll_duration is not None] if snap else []
        return DemoInfo(sim.control_url, str(config),
                        statistics.median(durations) if durations else None,
                        max(durations) if durations else None, truth,
                        None if once else hint)

    async def refresh_truth() -> None:
        nonlocal truth
        with contextlib.suppress(OSError, ValueError):
            truth = await loop.run_in_executor(None, sim.get, "/truth")

    def complete() -> bool:
        pub = daemon.published
        return pub is not None and all(d.last_poll is not None for d in pub.snapshot.devices.values())

    try:
        while daemon.exporter is None or daemon.exporter.port == 0:
            if task.done():
                return int(task.result())
            await asyncio.sleep(0.05)
        print(f"simulated {DEMO_PRESET} hall: control API {sim.control_url} (GET /truth), "
              f"config {config}, dcim metrics http://127.0.0.1:{daemon.exporter.port}/metrics"
              + ("" if once else f"; {hint}"), file=out, flush=True)
        deadline = None if duration is None else time.monotonic() + duration
        started = time.monotonic()
        while not complete() and time.monotonic() - started < 30 and not task.done():
            await asyncio.sleep(0.2)
        if once or not out.isatty():
            while not task.done():
                await refresh_truth()
                if daemon.published is not None:
                    print(plain(daemon.published.snapshot, info()), file=out, flush=True)
                if once or (deadline is not None and time.monotonic() + interval > deadline):
                    return 0
                await asyncio.wait({task}, timeout=interval)
            return int(task.result())
        with Live(render(None, info()), console=Console(file=out), refresh_per_second=2) as live:
            while not task.done() and (deadline is None or time.monotonic() < deadline):
                await refresh_truth()
                live.update(render(daemon.published.snapshot if daemon.published else None,
                                   info()))
                await asyncio.wait({task}, timeout=1.0)
        return 0 if not task.done() else int(task.result())
    finally:
        restore.close()
        daemon.stop()
        await asyncio.wait({task}, timeout=10)
        await cancel_and_wait([task], CANCEL_WAIT_S)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
