"""The BMS source: DSX value messages on Mosquitto become readings of site devices."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import pytest
from support.servers import MosquittoServer
from support.sink_site import REGISTRY, SITE_CONFIG

from dcim.compute import compute
from dcim.config import parse_config
from dcim.errors import ConfigError
from dcim.readings import PollResult
from dcim.site import DeviceSpec, Site, build_site
from dcim.sources import make_sources, owned_devices
from dcim.sources.bms import BmsSource, parse_value
from dcim.state import latest

LEAK_TOPIC = "BMS/v1/PUB/Value/CDU/LeakDetect/campus/hall-1/cdu-9/leak"
SUPPLY_TOPIC = "BMS/v1/PUB/Value/CDU/LiquidTemperature/campus/hall-1/cdu-9/supply"


def _site(port: int = 1883, legacy: bool = False) -> Site:
    """The sink test site with a BMS-fed CDU, under sources.bms (or the deprecated key)."""
    config = dict(SITE_CONFIG)
    config["devices"] = [*SITE_CONFIG["devices"],
                         {"id": "cdu-9", "profile": "generic-cdu", "host": "bms", "port": 502,
                          "serves": ["r02"], "interval": "2m"}]
    points = [{"topic": LEAK_TOPIC, "device": "cdu-9", "point": "leak"},
              {"topic": SUPPLY_TOPIC, "device": "cdu-9", "point": "supply_temp_c"}]
    if legacy:
        config["exporters"] = {"mqtt": {"host": "127.0.0.1", "port": port, "plain": False,
                                        "bms": {"points": points}}}
    else:
        config["sources"] = {"bms": {"host": "127.0.0.1", "port": port, "points": points}}
    return build_site(parse_config(config), REGISTRY)


def _payload(value: float | None, ts: float, quality: int = 1) -> bytes:
    return json.dumps({"value": value, "timestamp": round(ts * 1000), "quality": quality}).encode()


class Sink:
    """Collects the results a source hands on (the daemon records them in coordinators)."""

    def __init__(self) -> None:
        self.results: list[PollResult] = []

    def __call__(self, device: DeviceSpec, result: PollResult) -> None:
        self.results.append(result)


def test_parse_value_cases() -> None:
    assert parse_value(b'{"value": 1, "timestamp": 1000, "quality": 1}') == (1.0, 1.0, None)
    assert parse_value(b'{"value": null, "timestamp": 1000, "quality": 1}')[2] is not None
    assert "quality 0" in str(parse_value(b'{"value": 1, "timestamp": 1000, "quality": 0}')[2])
    assert str(parse_value(b"not json")[2]) == "wrong_type: payload is not JSON"
    assert parse_value(b'{"value": 1, "timestamp": 1.5, "quality": 1}')[2] is not None
    assert parse_value(b'{"value": true, "timestamp": 1000, "quality": 1}')[2] is not None


def test_invalid_and_stale_readings_are_not_used() -> None:
    now = [1_760_000_000.0]
    sink = Sink()
    site = _site()
    assert site.sources.bms is not None
    source = BmsSource(site.sources.bms, site, sink, clock=lambda: now[0])
    result = source.handle(SUPPLY_TOPIC, _payload(31.5, now[0] - 1))
    assert result is not None and result.values == {"supply_temp_c": 31.5}
    result = source.handle(LEAK_TOPIC, _payload(None, now[0], quality=0))
    assert result is not None and "leak" not in result.values and "leak" in result.errors
    assert result.values == {"supply_temp_c": 31.5}
    result = source.handle(LEAK_TOPIC, _payload(1, now[0], quality=2))
    assert result is not None and "quality 2" in result.errors["leak"].message
    result = source.handle(LEAK_TOPIC, _payload(7, now[0]))  # a leak flag of 7: out of range
    assert result is not None and "leak" in result.errors
    assert source.invalid[("cdu-9", "leak")] == 3
    # the device is fresh as long as its oldest used point is (max_age = 2 min interval)
    result = source.handle(LEAK_TOPIC, _payload(0, now[0]))
    assert result is not None and result.time == now[0] - 1
    now[0] += 200
    result = source.handle(LEAK_TOPIC, _payload(0, now[0]))
    assert result is not None and result.values == {"leak": 0.0}
    assert result.errors["supply_temp_c"].reason == "stale"
    assert source.handle("BMS/v1/PUB/Value/CDU/Other/x", _payload(1, now[0])) is None


def test_mapping_errors_name_the_field() -> None:
    config = dict(SITE_CONFIG)
    config["sources"] = {"bms": {"host": "h", "points": [
        {"topic": "a", "device": "nope", "point": "leak"},
        {"topic": "b", "device": "main-1", "point": "leak"},
        {"topic": "b", "device": "cdu-1", "point": "leek"}]}}
    # Checked with the rest of the site, so check-config, pue and run all refuse it.
    with pytest.raises(ConfigError) as err:
        build_site(parse_config(config), REGISTRY)
    assert err.value.errors == [
        "sources.bms.points[0].device: unknown device 'nope'",
        "sources.bms.points[1].point: a meter has no point 'leak'",
        "sources.bms.points[2].topic: 'b' is mapped twice",
        "sources.bms.points[2].point: unknown point 'leek'",
    ]


def test_wildcard_topics_are_refused() -> None:
    config = dict(SITE_CONFIG)
    config["sources"] = {"bms": {"host": "h", "points": [
        {"topic": "BMS/v1/PUB/Value/CDU/#", "device": "cdu-1", "point": "leak"}]}}
    with pytest.raises(ConfigError, match="wildcards"):
        parse_config(config)


async def _until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("legacy", [False, True], ids=["sources.bms", "exporters.mqtt.bms"])
async def test_a_published_leak_becomes_the_cdus_leak_point(mosquitto: MosquittoServer,
                                                            legacy: bool) -> None:
    site = _site(mosquitto.port, legacy)
    deprecated = [w for w in site.warnings if w.startswith("exporters")]
    assert len(deprecated) == (2 if legacy else 0), site.warnings
    assert owned_devices(site) == {"cdu-9"}
    sink = Sink()
    [source] = make_sources(site, sink)
    await source.start()
    await _until(lambda: source.link.connected)
    now = time.time()
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as bms:
        await bms.publish(SUPPLY_TOPIC, _payload(30.2, now), qos=1)
        await bms.publish(LEAK_TOPIC, _payload(1, now), qos=1)
        await _until(lambda: len(sink.results) == 2)
        snapshot = compute(site, latest(sink.results), time.time())
        assert snapshot.cdus["cdu-9"].leak is True
        assert snapshot.cdus["cdu-9"].supply_c == 30.2
        assert snapshot.devices["cdu-9"].values == {"supply_temp_c": 30.2, "leak": 1.0}
        # the BMS loses the sensor: null / bad quality is invalid, the leak point is withheld
        await bms.publish(LEAK_TOPIC, _payload(None, now + 1, quality=0), qos=1)
        await _until(lambda: len(sink.results) == 3)
    await source.stop()
    snapshot = compute(site, latest(sink.results), time.time())
    assert snapshot.cdus["cdu-9"].leak is None
    metrics = {m.name: m for m in source.metrics()}
    assert metrics["dcim_bms_messages_received"].samples[0].value == 3


async def test_source_reconnects_after_a_broker_restart(mosquitto: MosquittoServer) -> None:
    site = _site(mosquitto.port)
    sink = Sink()
    [source] = make_sources(site, sink)
    await source.start()
    await _until(lambda: source.link.connected)
    await asyncio.to_thread(mosquitto.stop)
    await _until(lambda: not source.link.connected)
    await asyncio.to_thread(mosquitto.start)
    await _until(lambda: source.link.connected, 30)
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as bms:
        await bms.publish(LEAK_TOPIC, _payload(0, time.time()), qos=1)
        await _until(lambda: len(sink.results) == 1)
    await source.stop()
    assert sink.results[0].values == {"leak": 0.0}


def test_daemon_takes_a_bms_leak_instead_of_polling(tmp_path: Any, mosquitto: MosquittoServer) -> None:
    """`dcim run` end to end: the tiny site's CDU is fed by the BMS, not polled."""
    import yaml
    from support.daemon_process import DaemonProcess
    from support.servers import wait_until

    from dcim.sim.child import SimulatorProcess

    sim = SimulatorProcess.start("tiny", tmp_path / "sim.yaml")
    daemon = None
    try:
        cdu = next(d["id"] for d in yaml.safe_load(sim.config.read_text())["devices"]
                   if d["profile"] == "generic-cdu")
        topics = {p: f"BMS/v1/PUB/Value/CDU/{p}/campus/tiny/{cdu}" for p in
                  ("leak", "supply_temp_c", "return_temp_c", "flow_lpm")}
        bms = {"points": [{"topic": t, "device": cdu, "point": p} for p, t in topics.items()]}
        daemon = DaemonProcess(tmp_path, sim.config,
                               polling={"interval": "1s", "timeout": "400ms", "max_age": "5s"},
                               sources={"bms": {"host": "127.0.0.1", "port": mosquitto.port,
                                                **bms}})
        daemon.start()

        async def publish() -> None:
            async with aiomqtt.Client("127.0.0.1", mosquitto.port) as client:
                now = time.time()
                for point, value in (("leak", 1), ("supply_temp_c", 32.0),
                                     ("return_temp_c", 42.0), ("flow_lpm", 600.0)):
                    await client.publish(topics[point], _payload(value, now), qos=1)

        leak = f'dcim_cdu_leak_detected{{cdu="{cdu}",site="sim-tiny"}}'

        def leak_seen() -> bool:
            asyncio.run(publish())
            return daemon is not None and daemon.metrics().get(leak) == 1.0

        wait_until(leak_seen, 20, interval=1.0, what="BMS leak in dcim's metrics")
        heat = daemon.metrics()
        assert heat[f'dcim_cdu_heat_removed_watts{{cdu="{cdu}",site="sim-tiny",source="computed"}}'] \
            == pytest.approx(600 / 60_000 * 1017 * 3950 * 10, rel=1e-6)
        # The scheduler left the BMS-fed CDU alone.
        assert f'dcim_device_polls_total{{device="{cdu}",site="sim-tiny"}}' not in heat
        assert daemon.stop() == 0
    finally:
        if daemon is not None:
            daemon.close()
        sim.stop()
