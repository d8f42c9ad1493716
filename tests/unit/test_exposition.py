"""dcim's own text exposition (dcim/sinks/exposition.py) against prometheus_client's.

Both renderings of the same families are parsed with prometheus_client.parser and must give
the same families, HELP, types, samples, labels and values; hostile label values and special
floats included. The sink renders once per Published and serves cached bytes and gzip.
"""

from __future__ import annotations

import asyncio
import gzip
import math
import threading
import time
import urllib.request
from collections.abc import Iterator

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, Metric, generate_latest
from prometheus_client.core import CounterMetricFamily
from prometheus_client.parser import text_string_to_metric_families
from support.sink_site import World

from dcim.metric_families import counter, gauge
from dcim.sinks import exposition, prometheus
from dcim.sinks.exposition import Family
from dcim.sinks.prometheus import PrometheusSink
from dcim.sinks.prometheus_metrics import render


class _Collector:
    def __init__(self, families: list[Metric]):
        self.families = families

    def collect(self) -> Iterator[Metric]:
        yield from self.families


def reference(families: list[Metric]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(families))
    return generate_latest(registry)


def parsed(text: bytes) -> list[Metric]:
    return list(text_string_to_metric_families(text.decode()))


def assert_same(families: list[Metric]) -> None:
    ours, theirs = parsed(exposition.write(families)), parsed(reference(families))
    assert ours == theirs
    assert sum(len(f.samples) for f in ours) == sum(len(f.samples) for f in theirs)


def test_a_site_renders_like_prometheus_client() -> None:
    world = World()
    world.poll_all(100.0)
    world.fail("cdu-2", 101.0)
    extras = [gauge("dcim_sink_up", "a sink's health", 1.0, sink="influx"),
              counter("dcim_sink_errors", "errors", {("influx", "timeout"): 3.0},
                      ["sink", "kind"])]
    families = list(render(world.published(102.0), [lambda: extras]))
    assert sum(len(f.samples) for f in families) > 50
    assert_same(families)
    text = exposition.write(families).decode()
    assert "# TYPE dcim_build_info gauge" in text and "# TYPE dcim_device_polls_total counter" in text


labels = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=12)
values = st.floats(allow_nan=False) | st.integers(-(2**53), 2**53).map(float)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(labels, labels, values), max_size=8),
       doc=st.text(max_size=30), typ=st.sampled_from(["gauge", "counter"]))
def test_hostile_labels_and_values(rows: list[tuple[str, str, float]], doc: str, typ: str) -> None:
    family = Family("dcim_test_metric", doc, typ, ["site", "device"])
    seen = set()
    for site, device, value in rows:
        if (site, device) in seen:
            continue  # a series appears once per family
        seen.add((site, device))
        family.add_metric([site, device], value)
    assert_same([family, Family("dcim_empty", "no rows", "gauge", ["x"])])


def test_nan_and_mixed_metric_objects() -> None:
    family = Family("dcim_ratio", "r", "gauge", [])
    family.add_metric([], math.nan)
    plain = CounterMetricFamily("dcim_plain", "a prometheus_client family", labels=["a"])
    plain.add_metric(["b"], 2.0)
    ours = parsed(exposition.write([family, plain]))
    assert math.isnan(ours[0].samples[0].value)
    assert ours[1] == parsed(reference([plain]))[0]


def test_family_samples_for_metric_readers() -> None:
    family = Family("dcim_x_total", "x", "counter", ["a"])
    family.add_metric(["1"], 5)
    assert family.name == "dcim_x" and family.samples[0].name == "dcim_x_total"
    assert family.samples[0].labels == {"a": "1"} and family.samples[0].value == 5.0


def test_sink_renders_once_per_published_and_caches_gzip() -> None:
    world = World()
    world.poll_all(100.0)
    sink = PrometheusSink("127.0.0.1:0")
    first = world.published(101.0)
    sink.published = first
    body = sink.exposition()
    assert sink.exposition() is body and sink.stats.renders == 1
    zipped = sink.exposition(gzipped=True)
    assert gzip.decompress(zipped) == body and sink.exposition(gzipped=True) is zipped
    assert sink.stats.gzips == 1 and sink.stats.scrapes == 4
    sink.published = world.published(102.0)
    assert sink.exposition() != body and sink.stats.renders == 2
    text = sink.exposition().decode()
    assert "dcim_metrics_renders_total 1.0" in text  # counted before this render
    assert parsed(body)  # and it parses


async def test_a_scrape_is_rendered_on_the_event_loop_in_slices() -> None:

    world = World()
    world.poll_all(100.0)
    sink = PrometheusSink("127.0.0.1:0")
    rendered_on: list[int] = []
    sink.extra.append(lambda: rendered_on.append(threading.get_ident()) or ())
    sink.start()
    try:
        sink.published = world.published(101.0)
        ticks = 0

        async def ticker() -> None:  # stands for the polls that run between the slices
            nonlocal ticks
            while True:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        url = f"http://127.0.0.1:{sink.port}/metrics"
        body = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read())
        task.cancel()
    finally:
        sink.stop()
    assert rendered_on == [threading.get_ident()]  # this test's loop, not the HTTP thread
    assert parsed(body) and b"dcim_device_up" in body
    assert ticks > 0 and sink.stats.renders == 1 and sink.stats.render_seconds > 0


def test_a_wedged_loop_does_not_stop_scrapes() -> None:

    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    world = World()
    world.poll_all(100.0)
    sink = PrometheusSink("127.0.0.1:0")
    rendered_on: list[int] = []
    sink.extra.append(lambda: rendered_on.append(threading.get_ident()) or ())
    asyncio.run_coroutine_threadsafe(_start(sink), loop).result(5)
    sink.loop_wait = 0.2
    try:
        sink.published = world.published(101.0)
        loop.call_soon_threadsafe(time.sleep, 1.5)  # the loop is stuck in a callback
        body = sink.exposition()
    finally:
        sink.stop()
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
    assert parsed(body)
    assert threading.get_ident() in rendered_on  # rendered here, in the scraping thread


async def _start(sink: PrometheusSink) -> None:
    sink.start()


async def test_the_sliced_render_is_the_same_exposition() -> None:

    world = World()
    world.poll_all(100.0)
    pub = world.published(101.0)
    sink = PrometheusSink("127.0.0.1:0")
    expected = exposition.write(render(pub, [sink._own]))  # before the render counts itself
    prometheus.RENDER_SLICE_S = 0.0  # a pause at every chance
    try:
        sliced = await sink._render_sliced(pub)
    finally:
        prometheus.RENDER_SLICE_S = 0.005
    assert sliced == expected
