"""The MQTT sink against a real Mosquitto (Debian `mosquitto`, persistence on).

Payloads on the DSX topics are validated against tests/dsx_bms_schema.json; plain state is
retained; a broker restart loses no QoS 1 event (the subscriber and dcim both use persistent
sessions); a broker that refuses dcim's credentials is reported, and publishing still returns
at once.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from typing import Any

import aiomqtt
import pytest
from support.dsx import validate_message
from support.servers import MosquittoServer
from support.sink_site import World

from dcim.config import MqttExporter
from dcim.sinks.mqtt import MqttSink

T0 = 1_760_000_000.0


def _sink(broker: MosquittoServer, **kw: Any) -> MqttSink:
    config = MqttExporter.model_validate({"host": broker.host, "port": broker.port,
                                          "topic_prefix": "dcim/hall-1", "client_id": "dcim-test",
                                          **kw})
    return MqttSink(config, World().site)


async def _until(cond: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def _collect(broker: MosquittoServer, topic: str, seconds: float, *,
                   client_id: str | None = None, clean: bool = True) -> list[aiomqtt.Message]:
    out: list[aiomqtt.Message] = []
    async with aiomqtt.Client(broker.host, broker.port, identifier=client_id,
                              clean_session=clean) as client:
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


async def test_dsx_and_plain_messages_on_the_broker(mosquitto: MosquittoServer) -> None:
    sink = _sink(mosquitto, dsx=True)
    await sink.start()
    world = World()
    world.poll_all(T0, rack_kw=70.0)
    sink.publish(world.published(T0 + 0.5))
    await _until(lambda: sink.connected and not sink._dirty)
    # A late subscriber gets every retained topic: metadata, values and plain state.
    got = await _collect(mosquitto, "#", 2.0)
    await sink.stop(2.0)
    by_topic = {str(m.topic): m for m in got}
    dsx = {t: m for t, m in by_topic.items() if t.startswith("BMS/")}
    assert len(dsx) > 20
    for topic, message in dsx.items():
        assert message.retain
        assert validate_message(topic, _json(message)) == [], topic
    power = _json(by_topic["BMS/v1/PUB/Value/Rack/RackPower/hall-1/r01"])
    assert power == {"value": 70.0, "timestamp": round((T0 + 0.5) * 1000), "quality": 1}
    rack = _json(by_topic["dcim/hall-1/racks/r01"])
    assert rack["power_w"] == 70_000.0 and rack["cap_w"] == 190_000.0
    assert _json(by_topic["dcim/hall-1/site"])["pue"] == 1.25
    assert not any(t.startswith("dcim/hall-1/events/") for t in by_topic)  # never retained


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
    await _until(lambda: not sink.connected)
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
    await _until(lambda: sink.auth_failed)
    world = World()
    started = time.monotonic()
    for i in range(6):
        world.poll_all(T0 + i, leak=i % 2)
        sink.publish(world.published(T0 + i + 0.5))
    assert time.monotonic() - started < 1.0
    await _until(lambda: sink.connect_errors.get("auth", 0) >= 2, 20)
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
    await _until(lambda: sink.connected)
    await sink.stop(1.0)
    assert not sink.auth_failed
