"""`dcim run`: wires config -> scheduler -> drivers -> state -> compute -> sinks, and lifecycle.

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
from collections.abc import Iterable
from pathlib import Path

from dcim.compute import compute
from dcim.compute.energy import DeviceEnergy, Increment, Totals, add_increments, observe, role_of
from dcim.compute.snapshot import Published
from dcim.daemon.energy_store import EnergyStore, StateError
from dcim.daemon.notify import Notifier
from dcim.daemon.scheduler import Scheduler
from dcim.drivers.identify import identify_all
from dcim.drivers.poller import Poller
from dcim.errors import ConfigError
from dcim.health import Health
from dcim.interfaces import Sink, Source
from dcim.readings import PollResult
from dcim.sinks.prometheus import PrometheusSink
from dcim.site import DeviceSpec, Site, load_site, restrict_to_shard
from dcim.sources import make_sources, owned_devices
from dcim.state import StateStore

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


SINK_NAMES = ("influxdb", "mqtt")


def make_sinks(site: Site, state_dir: Path, only: Iterable[str] = SINK_NAMES) -> list[Sink]:
    """The sinks the config asks for (InfluxDB, MQTT), limited to the names in only."""
    sinks: list[Sink] = []
    if site.sinks.influxdb is not None and "influxdb" in only:
        from dcim.sinks.influx import InfluxSink

        sinks.append(InfluxSink(site.sinks.influxdb, state_dir))
    if site.sinks.mqtt is not None and "mqtt" in only:
        from dcim.sinks.mqtt import MqttSink

        sinks.append(MqttSink(site.sinks.mqtt, site))
    return sinks


def polled_devices(site: Site) -> list[DeviceSpec]:
    """The devices the scheduler polls: all but those a source (the BMS) feeds."""
    owned = owned_devices(site)
    return [d for d in site.devices.values() if d.id not in owned]


class Daemon:
    """The long-running service."""

    def __init__(self, config_path: Path, listen: str | None = None,
                 shard: tuple[int, int] | None = None, notifier: Notifier | None = None,
                 state_dir: Path | None = None, signals: bool = True):
        self.config_path = config_path
        self.state_dir = state_dir
        self.signals = signals
        self.listen = listen
        self.shard = shard
        self.notifier = notifier or Notifier()
        self.health = Health()
        self.store = StateStore()
        self.poller: Poller | None = None
        self.site: Site | None = None
        self.exporter: PrometheusSink | None = None
        self.sinks: list[Sink] = []
        self.sources: list[Source] = []
        self.energy: dict[str, DeviceEnergy] = {}
        self.totals = Totals({})
        self._pending: list[Increment] = []
        self._dirty_energy: set[str] = set()
        self._changed = True
        self._stop = asyncio.Event()
        self._reload = asyncio.Event()
        self._state_dir: Path | None = None
        self.published: Published | None = None

    def _load(self) -> Site:
        site = load_site(self.config_path, identify=identify_all)
        for warning in site.warnings:
            log.warning("config: %s", warning)
        if self.shard is not None:
            site = restrict_to_shard(site, *self.shard)
        return site

    def _on_result(self, device: DeviceSpec, result: PollResult) -> None:
        self.store.update(result)
        if self.site is None or device.id not in self.site.devices:
            return
        prev = self.energy.get(device.id, DeviceEnergy())
        state, inc = observe(device, role_of(self.site, device.id), prev, result)
        if state != prev:
            self.energy[device.id] = state
            self._dirty_energy.add(device.id)
        if inc is not None:
            self._pending.append(inc)
        self._changed = True

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
            energy_store = EnergyStore(state_dir / "state.db")
            self.energy, self.totals = energy_store.load()
        except StateError as exc:
            log.error("%s", exc)
            return EXIT_CONFIG
        listen = self.listen or site.sinks.prometheus.listen
        web_config = site.sinks.prometheus.web_config_file
        try:
            self.exporter = PrometheusSink(listen, self.health, web_config)
            self.exporter.healthy = lambda: self._alive(time.monotonic())
            self.exporter.start()
        except ConfigError as exc:
            for line in exc.errors:
                log.error("%s", line)
            energy_store.close()
            return EXIT_CONFIG
        except OSError as exc:
            log.error("cannot listen on %s: %s", listen, exc.strerror or exc)
            energy_store.close()
            return EXIT_CONFIG
        loop = asyncio.get_running_loop()
        if self.signals:
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._stop.set)
            loop.add_signal_handler(signal.SIGHUP, self._reload.set)
        self.poller = Poller(site.max_in_flight)
        scheduler = Scheduler(self.poller, self._on_result, self.health)
        self._state_dir = state_dir
        await self._start_outputs(site, sinks=set(SINK_NAMES), sources=True)
        scheduler.set_devices(polled_devices(site))
        log.info("dcim polling %d devices of site %s; metrics on http://%s:%d/metrics",
                 len(site.devices), site.name, self.exporter.host, self.exporter.port)
        self.notifier.ready(self._status_line())
        try:
            await self._loop(scheduler, energy_store)
        finally:
            self.notifier.stopping()
            await self._stop_outputs(sinks=set(), sources=True)
            await scheduler.stop()
            self._tick(energy_store)
            await self._stop_outputs(sinks=set(SINK_NAMES), sources=False)
            await self.poller.close()
            self.exporter.stop()
            energy_store.close()
            if self.signals:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
        log.info("dcim stopped")
        return 0

    def stop(self) -> None:
        """Ask the daemon to drain and exit (what SIGTERM does)."""
        self._stop.set()

    def reload(self) -> None:
        """Ask the daemon to re-read its config (what SIGHUP does)."""
        self._reload.set()

    async def _loop(self, scheduler: Scheduler, energy_store: EnergyStore) -> None:
        watchdog = self.notifier.watchdog_interval()
        last_status = 0.0
        while not self._stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), TICK_S)
            if self._reload.is_set():
                self._reload.clear()
                await self._do_reload(scheduler)
            self._tick(energy_store)
            now = time.monotonic()
            if watchdog is not None and self._alive(now):
                self.notifier.watchdog()
            if now - last_status >= 10:
                self.notifier.status(self._status_line())
                last_status = now

    def _alive(self, now: float) -> bool:
        """The poll loop made progress recently (else let the systemd watchdog restart us)."""
        if self.site is None or not self.site.devices:
            return True
        longest = max(d.interval for d in self.site.devices.values())
        return now - self.health.last_progress < 3 * longest + 10

    def _tick(self, energy_store: EnergyStore) -> None:
        """Compute and publish a snapshot if anything changed; persist energy."""
        assert self.site is not None
        if self._pending:
            self.totals = add_increments(self.site, self.totals, self._pending)
            self._pending = []
        if self._dirty_energy:
            energy_store.save({d: self.energy[d] for d in self._dirty_energy}, self.totals)
            self._dirty_energy.clear()
        now = time.time()
        # Recompute every tick even without new polls: readings age and may turn stale.
        snapshot = compute(self.site, self.store.view(), now)
        published = Published(site=self.site, snapshot=snapshot, totals=self.totals,
                              device_energy=dict(self.energy), shard=self.shard)
        self.published = published
        if self.exporter is not None:
            self.exporter.published = published
        if self._changed:
            for sink in self.sinks:
                sink.publish(published)
            self._changed = False

    async def _do_reload(self, scheduler: Scheduler) -> None:
        try:
            # In a thread: a large file must not stall polling while it parses.
            site = await asyncio.to_thread(self._load)
        except Exception as exc:
            errors = exc.errors if isinstance(exc, ConfigError) else [
                f"{self.config_path}: cannot load ({type(exc).__name__}: {exc}; a dcim bug)"]
            log.error("reload refused, keeping the running config: %s", "; ".join(errors),
                      exc_info=None if isinstance(exc, ConfigError) else exc)
            self.notifier.status("reload refused: invalid config; " + self._status_line())
            return
        old = self.site
        assert old is not None
        self.site = site
        self.store.forget(set(site.devices))
        scheduler.set_devices(polled_devices(site))
        # Only the sinks whose settings changed restart (an MQTT sink restarted for nothing
        # would announce its open events again).
        sinks = {n for n in SINK_NAMES if getattr(old.sinks, n) != getattr(site.sinks, n)}
        # A source maps its topics onto device specs, so it also restarts when those changed.
        owned = owned_devices(old) | owned_devices(site)
        restart_sources = old.sources != site.sources or any(
            old.devices.get(d) != site.devices.get(d) for d in owned)
        await self._stop_outputs(sinks=sinks, sources=restart_sources)
        await self._start_outputs(site, sinks=sinks, sources=restart_sources)
        if old.sinks.prometheus != site.sinks.prometheus or \
                old.max_in_flight != site.max_in_flight:
            log.warning("the Prometheus listener and polling.max_in_flight keep their running "
                        "values until dcim restarts")
        self._changed = True
        log.info("config reloaded: %d devices%s%s", len(site.devices),
                 f"; restarted {', '.join(sorted(sinks))}" if sinks else "",
                 "; sources restarted" if restart_sources else "")

    async def _start_outputs(self, site: Site, sinks: set[str], sources: bool) -> None:
        """Create and start the named sinks and (if sources) the sources the config asks for."""
        assert self.exporter is not None and self._state_dir is not None
        for sink in make_sinks(site, self._state_dir, only=sinks):
            await sink.start()
            self.sinks.append(sink)
        if sources:
            self.sources = make_sources(site, self._on_result)
            for source in self.sources:
                await source.start()
        # One assignment, so a scrape sees either the old list or the new one.
        self.exporter.extra = [*(s.metrics for s in self.sinks), *(s.metrics for s in self.sources)]

    async def _stop_outputs(self, sinks: set[str], sources: bool, timeout: float = 3.0) -> None:
        """Stop the named sinks (they flush and spool what they hold) and (if sources) the sources."""
        if sources:
            for source in self.sources:
                await source.stop(timeout)
            self.sources = []
        for sink in [s for s in self.sinks if s.name in sinks]:
            await sink.stop(timeout=timeout)
            self.sinks.remove(sink)

    def _status_line(self) -> str:
        pub = self.published
        site = self.site
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

