"""`dcim run`: the daemon's lifecycle: start, signals, reload, the once-a-second tick, stop.

Wires config -> scheduler -> drivers -> coordinators (coordinator.py) -> compute -> sinks; the
energy ledger (ledger.py) and the sinks and sources (outputs.py) are their own modules.
SIGHUP reloads the config (an invalid one is refused and the old one kept; sinks and sources
whose settings changed are restarted, the spool carrying InfluxDB points across), SIGTERM drains
and exits 0, systemd is told READY/STATUS/WATCHDOG over $NOTIFY_SOCKET when present.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from dcim.compute import compute
from dcim.compute.snapshot import Published
from dcim.daemon import heap
from dcim.daemon.coordinator import Coordinators, DeviceCoordinator
from dcim.daemon.energy_store import StateError
from dcim.daemon.ledger import EnergyLedger
from dcim.daemon.notify import Notifier
from dcim.daemon.outputs import Outputs
from dcim.daemon.scheduler import Scheduler
from dcim.drivers.identify import identify_all
from dcim.drivers.poller import Poller
from dcim.errors import ConfigError
from dcim.health import Health
from dcim.readings import PollResult
from dcim.sinks.prometheus import PrometheusSink
from dcim.site import DeviceSpec, Site, load_site, restrict_to_shard
from dcim.sources import owned_devices

log = logging.getLogger("dcim")

TICK_S = 1.0
EXIT_CONFIG = 2


def default_state_dir() -> Path:
    """$STATE_DIRECTORY (systemd StateDirectory=), else /var/lib/dcim, else ~/.local/state."""
    env = os.environ.get("STATE_DIRECTORY")
    if env:
        return Path(env.split(":")[0])
    system = Path("/var/lib/dcim")
    if os.access(system if system.exists() else system.parent, os.W_OK):
        return system
    return Path.home() / ".local" / "state" / "dcim"


def polled_devices(site: Site) -> list[DeviceSpec]:
    """The devices the scheduler polls: all but those a source (the BMS) feeds."""
    owned = owned_devices(site)
    return [d for d in site.devices.values() if d.id not in owned]


@dataclass
class _Running:
    """What one `run` started, stopped in reverse order."""

    ledger: EnergyLedger
    exporter: PrometheusSink
    poller: Poller
    scheduler: Scheduler
    outputs: Outputs


class Daemon:
    """The long-running service: start, signals, reload, the tick loop, stop."""

    def __init__(self, config_path: Path, listen: str | None = None,
                 shard: tuple[int, int] | None = None, notifier: Notifier | None = None,
                 state_dir: Path | None = None, signals: bool = True):
        self.config_path = config_path
        self.state_dir = state_dir
        self.signals = signals
        self.listen = listen
        self.shard = shard
        self.notifier = notifier or Notifier()
        self.site: Site | None = None
        self.coordinators = Coordinators(self._on_update)
        self.exporter: PrometheusSink | None = None
        self.published: Published | None = None
        self._running: _Running | None = None
        self._changed = True
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()

    def _load(self) -> Site:
        site = load_site(self.config_path, identify=identify_all)
        for warning in site.warnings:
            log.warning("config: %s", warning)
        if self.shard is not None:
            site = restrict_to_shard(site, *self.shard)
        return site

    def _on_update(self, device: DeviceSpec, result: PollResult) -> None:
        """Every result a coordinator recorded (polled or from a source)."""
        assert self.site is not None and self._running is not None
        self._running.ledger.observe(self.site, device, result)
        self._changed = True

    def _polled(self, site: Site) -> list[DeviceCoordinator]:
        return [self.coordinators[d.id] for d in polled_devices(site)]

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the process exit code."""
        try:
            site = self._load()
        except ConfigError as exc:
            for line in exc.errors:
                log.error("config: %s", line)
            return EXIT_CONFIG
        self.site = site
        state_dir = self.state_dir or site.state_dir or default_state_dir()
        try:
            ledger = EnergyLedger.open(state_dir / "state.db", time.time())
        except StateError as exc:
            log.error("%s", exc)
            return EXIT_CONFIG
        exporter = self._start_exporter(site)
        if exporter is None:
            ledger.close()
            return EXIT_CONFIG
        loop = asyncio.get_running_loop()
        if self.signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
            loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        poller = Poller(site.max_in_flight)
        poller.on_identified = lambda _device: self._reload.set()
        running = self._running = _Running(ledger, exporter, poller, Scheduler(poller),
                                           Outputs(exporter, state_dir, self.coordinators.record))
        exporter.healthy = lambda: self._alive(running.scheduler, time.monotonic())
        self.coordinators.sync(site.devices.values())
        await running.outputs.start(site)
        running.scheduler.set_devices(self._polled(site))
        heap.settle()
        log.info("dcim polling %d devices of site %s; metrics on http://%s:%d/metrics",
                 len(site.devices), site.name, exporter.host, exporter.port)
        self.notifier.ready(status_line(self.site, self.published))
        try:
            await self._loop(running)
        finally:
            self.notifier.stopping()
            await running.outputs.stop_sources()
            await running.scheduler.stop()
            self._tick(running)  # the last results reach the ledger and the sinks
            await running.outputs.stop_sinks()
            await poller.close()
            exporter.stop()
            ledger.close()
            if self.signals:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
        log.info("dcim stopped")
        return 0

    def _start_exporter(self, site: Site) -> PrometheusSink | None:
        """The /metrics endpoint, serving; None (logged) if it cannot be."""
        listen = self.listen or site.sinks.prometheus.listen
        try:
            self.exporter = PrometheusSink(listen, site.sinks.prometheus.web_config_file)
            self.exporter.start()
        except ConfigError as exc:
            for line in exc.errors:
                log.error("%s", line)
            return None
        except OSError as exc:
            log.error("cannot listen on %s: %s", listen, exc.strerror or exc)
            return None
        return self.exporter

    def stop(self) -> None:
        """Ask the daemon to drain and exit (what SIGTERM does)."""
        self._stop.set()

    async def _loop(self, running: _Running) -> None:
        watchdog = self.notifier.watchdog_interval()
        last_status = 0.0
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TICK_S)
            if self._reload.is_set():
                self._reload.clear()
                await self._do_reload(running)
            self._tick(running)
            now = time.monotonic()
            if watchdog is not None and self._alive(running.scheduler, now):
                self.notifier.watchdog()
            if now - last_status >= 10:
                self.notifier.status(status_line(self.site, self.published))
                last_status = now

    def _alive(self, scheduler: Scheduler, now: float) -> bool:
        """The poll loop made progress recently (else let the systemd watchdog restart us)."""
        if self.site is None or not self.site.devices:
            return True
        longest = max(d.interval for d in self.site.devices.values())
        return now - scheduler.last_progress < 3 * longest + 10

    def _tick(self, running: _Running) -> None:
        """Compute and publish a snapshot if anything changed; persist energy."""
        site = self.site
        assert site is not None
        running.ledger.flush(site, time.time())
        # Recompute every tick even without new results: readings age and may turn stale.
        snapshot = compute(site, self.coordinators.states(), time.time())
        published = Published(
            site=site, snapshot=snapshot, totals=running.ledger.totals,
            device_energy=running.ledger.devices(), shard=self.shard,
            health=Health(self.coordinators.health(), running.poller.snmp_stats()))
        self.published = running.exporter.published = published
        if self._changed:
            running.outputs.publish(published)
            self._changed = False

    async def _do_reload(self, running: _Running) -> None:
        try:
            # In a thread: a large file must not stall polling while it parses.
            site = await asyncio.to_thread(self._load)
        except Exception as exc:
            errors = exc.errors if isinstance(exc, ConfigError) else [
                f"{self.config_path}: cannot load ({type(exc).__name__}: {exc}; a dcim bug)"]
            log.error("reload refused, keeping the running config: %s", "; ".join(errors),
                      exc_info=None if isinstance(exc, ConfigError) else exc)
            self.notifier.status("reload refused: invalid config; " + status_line(self.site, self.published))
            return
        old = self.site
        assert old is not None
        self.site = site
        self.coordinators.sync(site.devices.values())
        running.scheduler.set_devices(self._polled(site))
        restarted = await running.outputs.reload(old, site)
        if old.sinks.prometheus != site.sinks.prometheus or \
                old.max_in_flight != site.max_in_flight:
            log.warning("the Prometheus listener and polling.max_in_flight keep their running "
                        "values until dcim restarts")
        del old
        heap.settle()  # frees the previous site model, freezes the new one
        self._changed = True
        log.info("config reloaded: %d devices%s", len(site.devices),
                 f"; restarted {', '.join(restarted)}" if restarted else "")


def status_line(site: Site | None, pub: Published | None) -> str:
    """The one line systemd shows (`systemctl status dcim`)."""
    if site is None:
        return "starting"
    if pub is None:
        return f"polling {len(site.devices)} devices; no snapshot yet"
    snap = pub.snapshot
    up = sum(1 for d in snap.devices.values() if d.up)
    pue = "withheld" if snap.pue.value is None else f"{snap.pue.value:.3f}"
    return f"PUE {pue} ({snap.pue.status}); {up}/{len(snap.devices)} devices up"


def configure_logging(level: str = "INFO") -> None:
    """Plain one-line logs; journald adds its own timestamps under systemd."""
    fmt = "%(levelname)s %(name)s: %(message)s"
    if not os.environ.get("JOURNAL_STREAM"):
        fmt = "%(asctime)s " + fmt
    logging.basicConfig(level=level, format=fmt)
    # pymodbus logs every framing error at ERROR with a full hex dump (lines up to 40 KB, once
    # per bad reply); dcim already logs a device's failure once and its recovery. Its own
    # lines are kept only when dcim itself logs at DEBUG.
    debug = logging.getLogger().getEffectiveLevel() <= logging.DEBUG
    logging.getLogger("pymodbus").setLevel(logging.ERROR if debug else logging.CRITICAL)

