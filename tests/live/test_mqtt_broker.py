"""The MQTT sink against a real Mosquitto (Debian `mosquitto`, persistence on) and, for the DSX
layout, against nats-server's MQTT listener too (the DSX bus is NATS).

DSX messages are validated, as the broker delivers them, against our strict JSON Schema
(tests/fixtures/dsx_bms_schema.json): values at QoS 0 and never retained, metadata retained
(a late subscriber gets all of it and no value); plain state is retained; a broker restart
loses no QoS 1 event (the subscriber and dcim both use persistent sessions); a broker that
refuses dcim's credentials is reported, and publishing still returns at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import pytest
from support.dsx import BusMessage, capture_errors
from support.servers import MosquittoServer, NatsMqttServer
from support.sink_site import SITE_CONFIG, World, make_site

from dcim.config import MqttSinkConfig
from dcim.sinks.mqtt import MqttSink
from dcim.site import restrict_to_shard

T0 = 1_760_000_000.0
# The test site plus a UPS between the mains and the racks (its PowerMeters and UPS points).
POWER_PATH = {"devices": [
    *[{**d, "serves": ["ups-1"]} if d["id"] == "main-1" else d for d in SITE_CONFIG["devices"]],
    {"id": "ups-1", "profile": "ups-mib", "host": "h", "serves": ["r01", "r02"]},
]}


def _sink(broker: MosquittoServer, **kw: Any) -> MqttSink:
    config = MqttSinkConfig.model_validate({"host": broker.host, "port": broker.port,
                                            "topic_prefix": "dcim/hall-1",
                                            "client_id": "dcim-test", **kw})
    return MqttSink(config, World().site)


async def _until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def _collect(broker: MosquittoServer, topic: str, seconds: float, *,
                   client_id: str | None = None, clean: bool = True) -> list[aiomqtt.Message]:
    return await _collect_from(broker.host, broker.port, topic, seconds, client_id=client_id,
                               clean=clean)


async def _collect_from(host: str, port: int, topic: str, seconds: float, *,
                        client_id: str | None = None, clean: bool = True) -> list[aiomqtt.Message]:
    """Everything a subscriber receives on topic within seconds of subscribing."""
    out: list[aiomqtt.Message] = []
    async with aiomqtt.Client(host, port, identifier=client_id, clean_session=clean,
                              protocol=aiomqtt.ProtocolVersion.V311) as client:
        await client.subscribe(topic, qos=1)

        async def read() -> None:
            async for message in client.messages:
                out.append(message)

        with pytest.raises(TimeoutError):
            await asyncio.wait_for(read(), seconds)
    return out


def _json(message: aiomqtt.Message) -> Any:
    assert isinstance(message.payload, bytes)
    return json.loads(message.payload)


class _Subscriber:
    """A subscriber that stays connected while dcim publishes (asyncio task)."""

    def __init__(self, host: str, port: int, topic: str):
        self.host, self.port, self.topic = host, port, topic
        self.messages: list[aiomqtt.Message] = []
        self.subscribed = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        async with aiomqtt.Client(self.host, self.port,
                                  protocol=aiomqtt.ProtocolVersion.V311) as client:
            await client.subscribe(self.topic, qos=1)
            self.subscribed.set()
            async for message in client.messages:
                self.messages.append(message)

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


def _bus(message: aiomqtt.Message) -> BusMessage:
    return BusMessage(str(message.topic), _json(message), bool(message.retain), int(message.qos))


async def _dsx_on(host: str, port: int, qos: int) -> tuple[MqttSink, list[aiomqtt.Message],
                                                           list[aiomqtt.Message]]:
    """Publish one snapshot in both layouts; (sink, what a subscriber that was there all along
    received, what one that came afterwards received: the broker's retained messages)."""
    live = _Subscriber(host, port, "BMS/#")
    await asyncio.wait_for(live.subscribed.wait(), 15)
    config = MqttSinkConfig.model_validate({"host": host, "port": port,
                                            "topic_prefix": "dcim/hall-1", "client_id": "dcim-test",
                                            "dsx": True, "dsx_qos": qos})
    world = World(make_site(POWER_PATH))
    sink = MqttSink(config, world.site)
    await sink.start()
    world.poll_all(T0, rack_kw=70.0)
    world.poll("ups-1", T0, {"input_power_w": 150_000.0, "output_power_w": 140_000.0,
                             "on_battery": 0.0, "battery_charge_ratio": 1.0,
                             "current_a": {"1": 200.0, "2": 201.0, "3": 202.0}})
    sink.publish(world.published(T0 + 0.5))
    await _until(lambda: sink.link.connected and not sink._dirty)
    await _until(lambda: len(live.messages) >= sink.published["dsx"])
    await live.stop()
    late = await _collect_from(host, port, "#", 2.0)
    await sink.stop(2.0)
    return sink, live.messages, late


@pytest.mark.parametrize(("broker", "qos"), [("mosquitto", 0), ("nats_mqtt", 0), ("nats_mqtt", 1)])
async def test_dsx_messages_as_the_broker_delivers_them(
        broker: str, qos: int, request: pytest.FixtureRequest) -> None:
    server: MosquittoServer | NatsMqttServer = request.getfixturevalue(broker)
    sink, live, late = await _dsx_on(server.host, server.port, qos)
    values = [m for m in live if "/Value/" in str(m.topic)]
    metadata = [m for m in live if "/Metadata/" in str(m.topic)]
    assert len(values) == len(metadata) > 40 and len(live) == sink.published["dsx"]
    assert all(m.qos == qos and not m.retain for m in values)  # never retained
    late_dsx = [m for m in late if str(m.topic).startswith("BMS/")]
    # A late subscriber gets every metadata message, retained, and no value at all.
    assert {str(m.topic) for m in late_dsx} == {str(m.topic) for m in metadata}
    assert all(m.retain for m in late_dsx)
    assert capture_errors([*map(_bus, values), *map(_bus, late_dsx)]) == []
    by_topic = {str(m.topic): _json(m) for m in live}
    assert by_topic["BMS/v1/PUB/Value/Rack/RackPower/hall-1/r01/power"] == {
        "value": 70.0, "timestamp": round((T0 + 0.5) * 1000), "quality": 1}
    ups_out = "BMS/v1/PUB/Value/PowerMeter/ActivePower/hall-1/ups-1/output/activePower"
    assert by_topic[ups_out]["value"] == 140.0
    # The plain layout is retained state; its events never are.
    plain = {str(m.topic): _json(m) for m in late if str(m.topic).startswith("dcim/")}
    rack = plain["dcim/hall-1/racks/r01"]
    assert rack["power_w"] == 70_000.0 and rack["cap_w"] == 190_000.0
    assert plain["dcim/hall-1/site"]["pue"] is not None
    assert not any(t.startswith("dcim/hall-1/events/") for t in plain)


async def test_events_fire_once_at_start_and_once_at_clear(mosquitto: MosquittoServer) -> None:
    sink = _sink(mosquitto)
    await sink.start()
    listener = asyncio.create_task(_collect(mosquitto, "dcim/hall-1/events/#", 6.0))
    await asyncio.sleep(0.5)
    world = World()
    for i, leak in enumerate([0, 1, 1, 1, 0, 0]):
        world.poll_all(T0 + i, leak=leak)
        sink.publish(world.published(T0 + i + 0.5))
    got = await listener
    await sink.stop(2.0)
    leaks = [(_json(m)["cdu"], _json(m)["state"]) for m in got if str(m.topic).endswith("/leak")]
    assert leaks == [("cdu-1", "start"), ("cdu-2", "start"), ("cdu-1", "clear"),
                     ("cdu-2", "clear")]
    assert all(m.qos == 1 and not m.retain for m in got)


async def test_broker_restart_loses_no_qos1_event(mosquitto: MosquittoServer) -> None:
    # An operator's alerting client with a persistent session, currently offline.
    await _collect(mosquitto, "dcim/hall-1/events/#", 0.3, client_id="pager", clean=False)
    sink = _sink(mosquitto)
    await sink.start()
    world = World()
    world.poll_all(T0)
    sink.publish(world.published(T0 + 0.5))
    world.poll_all(T0 + 1, leak=1)
    sink.publish(world.published(T0 + 1.5))  # leak starts while the broker is up
    await _until(lambda: sink.published.get("event", 0) == 2)
    await asyncio.to_thread(mosquitto.stop)  # graceful: the broker persists queued messages
    await _until(lambda: not sink.link.connected)
    world.poll_all(T0 + 2, leak=0)
    sink.publish(world.published(T0 + 2.5))  # leak clears while the broker is down
    assert sink.metrics  # publishing returned at once
    queued = {m.name: m for m in sink.metrics()}["dcim_mqtt_events_queued"].samples[0].value
    assert queued == 2
    await asyncio.to_thread(mosquitto.start)
    await _until(lambda: sink.published.get("event", 0) == 4, 30)
    got = await _collect(mosquitto, "dcim/hall-1/events/#", 2.0, client_id="pager", clean=False)
    await sink.stop(2.0)
    events = [(_json(m)["cdu"], _json(m)["state"]) for m in got]
    assert events == [("cdu-1", "start"), ("cdu-2", "start"), ("cdu-1", "clear"),
                      ("cdu-2", "clear")]


async def test_refused_credentials_are_reported_and_publishing_goes_on(
        mosquitto_factory: Callable[..., MosquittoServer],
        caplog: pytest.LogCaptureFixture) -> None:
    broker = mosquitto_factory(users={"dcim": "right-password"})
    caplog.set_level(logging.ERROR, logger="dcim.mqtt")
    sink = _sink(broker, username="dcim", password="wrong-password", max_queue=3)
    await sink.start()
    await _until(lambda: sink.link.auth_failed)
    world = World()
    started = time.monotonic()
    for i in range(6):
        world.poll_all(T0 + i, leak=i % 2)
        sink.publish(world.published(T0 + i + 0.5))
    assert time.monotonic() - started < 1.0
    await _until(lambda: sink.link.connect_errors.get("auth", 0) >= 2, 20)
    metrics = {m.name: m for m in sink.metrics()}
    await sink.stop(1.0)
    assert metrics["dcim_mqtt_auth_failed"].samples[0].value == 1.0
    assert metrics["dcim_mqtt_connected"].samples[0].value == 0.0
    assert metrics["dcim_mqtt_events_queued"].samples[0].value == 3.0
    dropped = {s.labels["reason"]: s.value for s in metrics["dcim_mqtt_messages_dropped"].samples
               if s.name.endswith("_total")}
    assert dropped["queue_full"] > 0
    assert sum("refused the credentials" in r.message for r in caplog.records) == 1
    assert "wrong-password" not in caplog.text


async def test_right_credentials_connect(mosquitto_factory: Callable[..., MosquittoServer]) -> None:
    broker = mosquitto_factory(users={"dcim": "right-password"})
    sink = _sink(broker, username="dcim", password="right-password")
    await sink.start()
    await _until(lambda: sink.link.connected)
    await sink.stop(1.0)
    assert not sink.link.auth_failed


async def test_two_shards_on_one_host_keep_their_own_sessions(mosquitto: MosquittoServer) -> None:
    # The default client id (no client_id configured) carries the shard: with one id for
    # both, the broker drops each one's connection whenever the other reconnects (measured:
    # 3 lost connections each in 8 s of publishing).
    config = MqttSinkConfig.model_validate({"host": mosquitto.host, "port": mosquitto.port,
                                            "topic_prefix": "dcim/shards"})
    worlds = [World(restrict_to_shard(World().site, i, 2)) for i in range(2)]
    sinks = [MqttSink(config, world.site) for world in worlds]
    assert sinks[0].client_id.endswith("-0-of-2") and sinks[1].client_id.endswith("-1-of-2")
    for sink in sinks:
        await sink.start()
    try:
        for i in range(16):
            for world, sink in zip(worlds, sinks, strict=True):
                world.poll_all(T0 + i, rack_kw=60.0 + i)
                sink.publish(world.published(T0 + i + 0.5))
            await asyncio.sleep(0.5)
        await _until(lambda: all(s.link.connected and not s._dirty for s in sinks))
        assert [s.link.connect_errors for s in sinks] == [{}, {}]
    finally:
        for sink in sinks:
            await sink.stop(timeout=2)
