"""The daemon's outputs and inputs besides polling: sinks (InfluxDB, MQTT) and sources (BMS).

Started with the daemon, restarted on a reload only where their settings changed (an MQTT sink
restarted for nothing would announce its open events again), stopped at exit after a last
publish. Their self-health series are handed to the Prometheus endpoint.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

from dcim.compute.snapshot import Published
from dcim.interfaces import OnResult, Sink, Source
from dcim.sinks.prometheus import PrometheusSink
from dcim.site import Site
from dcim.sources import make_sources, owned_devices

SINK_NAMES = ("influxdb", "mqtt")
STOP_TIMEOUT_S = 3.0


def make_sinks(site: Site, state_dir: Path, only: Iterable[str] = SINK_NAMES,
               previous: Mapping[str, Sink] | None = None) -> list[Sink]:
    """The sinks the config asks for (InfluxDB, MQTT), limited to the names in only.

    `previous`: the instances a reload replaces, by name. A new InfluxDB sink continues where
    the old one stopped (it does not write again the polls the old one wrote).
    """
    sinks: list[Sink] = []
    if site.sinks.influxdb is not None and "influxdb" in only:
        from dcim.sinks.influx import InfluxSink

        before = (previous or {}).get("influxdb")
        sinks.append(InfluxSink(site.sinks.influxdb, state_dir,
                                before.lines if isinstance(before, InfluxSink) else None))
    if site.sinks.mqtt is not None and "mqtt" in only:
        from dcim.sinks.mqtt import MqttSink

        sinks.append(MqttSink(site.sinks.mqtt, site))
    return sinks


class Outputs:
    """The running sinks and sources of one daemon."""

    def __init__(self, exporter: PrometheusSink, state_dir: Path, on_result: OnResult):
        self._exporter = exporter
        self._state_dir = state_dir
        self._on_result = on_result
        self.sinks: list[Sink] = []
        self.sources: list[Source] = []

    async def start(self, site: Site, sinks: Iterable[str] = SINK_NAMES,
                    sources: bool = True, previous: Mapping[str, Sink] | None = None) -> None:
        """Create and start the named sinks and (if sources) the sources the config asks for."""
        for sink in make_sinks(site, self._state_dir, only=sinks, previous=previous):
            await sink.start()
            self.sinks.append(sink)
        if sources:
            self.sources = make_sources(site, self._on_result)
            for source in self.sources:
                await source.start()
        # One assignment, so a scrape sees either the old list or the new one.
        self._exporter.extra = [*(s.metrics for s in self.sinks),
                                *(s.metrics for s in self.sources)]

    async def stop_sources(self) -> None:
        """Stop every source (no reading arrives after this)."""
        for source in self.sources:
            await source.stop(STOP_TIMEOUT_S)
        self.sources = []

    async def stop_sinks(self, names: Iterable[str] = SINK_NAMES) -> None:
        """Stop the named sinks: they flush within the timeout and spool the rest."""
        names = set(names)
        for sink in [s for s in self.sinks if s.name in names]:
            await sink.stop(timeout=STOP_TIMEOUT_S)
            self.sinks.remove(sink)

    async def reload(self, old: Site, new: Site) -> list[str]:
        """Restart what the new config changed; the names of what restarted."""
        sinks = [n for n in SINK_NAMES if getattr(old.sinks, n) != getattr(new.sinks, n)]
        # A source maps its topics onto device specs, so it also restarts when those changed.
        owned = owned_devices(old) | owned_devices(new)
        sources = old.sources != new.sources or any(
            old.devices.get(d) != new.devices.get(d) for d in owned)
        if sources:
            await self.stop_sources()
        previous = {s.name: s for s in self.sinks if s.name in sinks}
        await self.stop_sinks(sinks)
        await self.start(new, sinks=sinks, sources=sources, previous=previous)
        return [*sinks, *(["sources"] if sources else [])]

    def publish(self, published: Published) -> None:
        """Hand a new snapshot to every sink."""
        for sink in self.sinks:
            sink.publish(published)
