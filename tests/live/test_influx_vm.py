"""The InfluxDB sink against a real /api/v2/write: VictoriaMetrics (Debian `victoria-metrics`).

No InfluxDB 2.x/3.x server is installable here (Debian's influxdb is 1.6, without /api/v2/write);
VictoriaMetrics accepts the same line protocol on /api/v2/write and stores `m,tags f=v` as the
series `m_f{tags}` without merging duplicates, so its export API shows every point exactly as
many times as it was written.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from support.servers import ExportedSeries, VictoriaMetricsServer
from support.sink_site import World

from dcim.config import InfluxSinkConfig
from dcim.sinks.influx import InfluxSink

T0 = 1_760_000_000.0


def _sink(vm: VictoriaMetricsServer, tmp_path: Path) -> InfluxSink:
    config = InfluxSinkConfig.model_validate({
        "url": vm.url, "org": "dcim", "bucket": "dcim", "token": "unused-by-vm",
        "flush_interval": "200ms"})
    return InfluxSink(config, tmp_path)


def _by(series: list[ExportedSeries], label: str) -> dict[str, ExportedSeries]:
    return {s.metric[label]: s for s in series}


async def test_measurements_tags_fields_and_timestamps(victoria_metrics: VictoriaMetricsServer,
                                                      tmp_path: Path) -> None:
    sink = _sink(victoria_metrics, tmp_path)
    await sink.start()
    world = World()
    for i in range(3):
        world.poll_all(T0 + 10 * i, rack_kw=50.0 + i)
        sink.publish(world.published(T0 + 10 * i + 0.5))
    world.fail("main-1", T0 + 30)
    sink.publish(world.published(T0 + 30.5))
    await asyncio.to_thread(
        victoria_metrics.wait_export, '{__name__="dcim_site_pue_coverage"}',
        lambda s: len(s) == 1 and len(s[0].values) == 4, 30.0)
    await sink.stop(2.0)

    racks = _by(victoria_metrics.export('{__name__="dcim_rack_power_w"}'), "rack")
    assert racks["r01"].metric == {"__name__": "dcim_rack_power_w", "site": "hall-1", "rack": "r01",
                                   "hall": "h1", "row": "a", "tenant": "acme"}
    # snapshot values carry the snapshot time
    assert racks["r01"].samples == [(round((T0 + 10 * i + 0.5) * 1000), (50.0 + i) * 1000)
                                    for i in range(3)]
    # a device reading carries its poll time, once per poll
    main = _by(victoria_metrics.export('{__name__="dcim_device_up"}'), "device")["main-1"]
    assert main.samples == [(round((T0 + 10 * i) * 1000), 1.0) for i in range(3)] + \
        [(round((T0 + 30) * 1000), 0.0)]
    phases = _by(victoria_metrics.export(
        '{__name__="dcim_device_current_a",device="r01-pdu-a"}'), "phase")
    assert sorted(phases) == ["L1", "L2", "L3"] and phases["L2"].values == [11.0] * 3
    # PUE is withheld once the facility meter failed: no value written, coverage says why
    pue = victoria_metrics.export('{__name__="dcim_site_pue"}')[0]
    assert len(pue.values) == 3
    withheld = victoria_metrics.export('{__name__="dcim_site_pue_withheld"}')[0]
    assert withheld.samples[-1] == (round((T0 + 30.5) * 1000), 1.0)
    cooling = _by(victoria_metrics.export('{__name__="dcim_cooling_heat_removed_w"}'), "cdu")
    assert set(cooling) == {"cdu-1", "cdu-2"}


async def test_exactly_once_across_an_outage(victoria_metrics: VictoriaMetricsServer,
                                             tmp_path: Path) -> None:
    sink = _sink(victoria_metrics, tmp_path)
    await sink.start()
    world = World()
    t = T0
    for _ in range(3):
        world.poll_all(t)
        sink.publish(world.published(t + 0.5))
        t += 1
        await asyncio.sleep(0.3)
    await asyncio.to_thread(victoria_metrics.stop)
    for _ in range(10):
        world.poll_all(t)
        sink.publish(world.published(t + 0.5))
        t += 1
        await asyncio.sleep(0.3)
    assert sink.sent > 0 and sink._queued > 0
    await asyncio.to_thread(victoria_metrics.start)
    found = await asyncio.to_thread(
        victoria_metrics.wait_export, '{__name__="dcim_device_up"}',
        lambda s: len(s) == 7 and all(len(x.values) == 13 for x in s), 60.0, 3.0)
    await sink.stop(2.0)
    for series in found:
        assert series.timestamps == sorted(set(series.timestamps))
        assert [ts for ts, _ in series.samples] == [round((T0 + i) * 1000) for i in range(13)]
