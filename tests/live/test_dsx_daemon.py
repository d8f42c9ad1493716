"""End to end on the DSX bus: `dcim run` polls the `tiny` simulator (PDUs over SNMP, a PM5500
meter and a CDU over Modbus, a UPS-MIB UPS) and publishes the DSX layout to nats-server's MQTT
listener, the broker the DSX bus runs on.

What must hold: every message a subscriber receives conforms to our strict schema
(tests/fixtures/dsx_bms_schema.json) as NATS delivers it: metadata retained, values not; every
point has metadata and a good value from the real devices; the power path runs mains -> UPS
input -> UPS output -> racks; a subscriber that comes later gets the metadata and no value.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
import yaml
from support.daemon_process import DaemonProcess
from support.dsx import BusMessage, capture_errors
from support.servers import NatsMqttServer, wait_until

from dcim.sim.child import SimulatorProcess

PREFIX = "campus-a/hall-1"


@pytest.fixture
def sim(tmp_path: Path) -> Iterator[SimulatorProcess]:
    simulator = SimulatorProcess.start("tiny", tmp_path / "sim.yaml")
    yield simulator
    simulator.stop()


def _with_power_path(sim_config: Path, out: Path) -> Path:
    """The simulator's site config, plus where the mains and the UPS send their power."""
    data: dict[str, Any] = yaml.safe_load(sim_config.read_text())
    for dev in data["devices"]:
        if dev["id"] == "main-1":
            dev["serves"] = ["ups-1"]
        elif dev["id"] == "ups-1":
            dev["serves"] = [rack["id"] for rack in data["racks"]]
    out.write_text(yaml.safe_dump(data, sort_keys=False))
    return out


async def _listen(broker: NatsMqttServer, name: str, out: list[BusMessage],
                  ready: asyncio.Event) -> None:
    # Each subscriber names itself: two connected at once with no client id would share one
    # NATS session (and its history).
    async with aiomqtt.Client(broker.host, broker.port, identifier=name,
                              protocol=aiomqtt.ProtocolVersion.V311) as client:
        await client.subscribe("BMS/#", qos=1)
        ready.set()
        async for m in client.messages:
            assert isinstance(m.payload, bytes)
            out.append(BusMessage(str(m.topic), json.loads(m.payload), bool(m.retain), int(m.qos)))


async def _subscriber(broker: NatsMqttServer, name: str
                      ) -> tuple[asyncio.Task[None], list[BusMessage]]:
    got: list[BusMessage] = []
    ready = asyncio.Event()
    task = asyncio.create_task(_listen(broker, name, got, ready))
    await asyncio.wait_for(ready.wait(), 15)
    return task, got


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _flushed(daemon: DaemonProcess) -> bool:
    """dcim has sent DSX messages and has none waiting."""
    m = daemon.metrics()
    return (m.get('dcim_mqtt_messages_published_total{kind="dsx"}', 0.0) > 0
            and m.get("dcim_mqtt_state_pending") == 0.0)


def _all_good(got: list[BusMessage]) -> bool:
    """Every point with metadata has had a good value (once every device has answered)."""
    metadata = {m.topic.replace("/Metadata/", "/", 1) for m in got if "/Metadata/" in m.topic}
    good = {m.topic.replace("/Value/", "/", 1) for m in got
            if "/Value/" in m.topic and m.payload["quality"] == 1}
    return bool(metadata) and metadata <= good


async def test_daemon_publishes_a_conforming_bus_on_nats(
        tmp_path: Path, sim: SimulatorProcess, nats_mqtt: NatsMqttServer) -> None:
    config = _with_power_path(sim.config, tmp_path / "site-dsx.yaml")
    daemon = DaemonProcess(tmp_path, config,
                           polling={"interval": "1s", "timeout": "400ms", "retries": 0,
                                    "max_age": "5s"},
                           sinks={"mqtt": {"host": nats_mqtt.host, "port": nats_mqtt.port,
                                           "plain": False, "dsx": True,
                                           "dsx_tag_prefix": PREFIX}})
    task, got = await _subscriber(nats_mqtt, "early")  # there before dcim: sees every first value
    try:
        await asyncio.to_thread(daemon.start)
        # The first flush is done (every point's metadata went out: dsx_points yields every point
        # of the site, fresh or not), then every point has had a good value.
        await asyncio.to_thread(wait_until, lambda: _flushed(daemon), 60.0, what="a first flush")
        await asyncio.to_thread(wait_until, lambda: _all_good(got), 60.0, what="a good value per point")
        late_task, late = await _subscriber(nats_mqtt, "late")
        await asyncio.sleep(2.0)  # retained messages arrive right after the subscription
        await _stop(late_task)
    finally:
        await _stop(task)
        await asyncio.to_thread(daemon.stop)
        daemon.close()
    # A subscriber that is there when a message is published gets it with retain 0 (MQTT
    # 3.1.1): the retain flag of metadata shows on what the late subscriber got.
    values = [m for m in got if "/Value/" in m.topic]
    assert values and all(not m.retain and m.qos == 0 for m in values)
    assert capture_errors([*values, *late]) == []
    metadata = {m.topic: m.payload for m in late if m.retain}
    by_topic = {m.topic: m.payload for m in values}
    root = f"BMS/v1/PUB/Value/PowerMeter/ActivePower/{PREFIX}"
    mains, ups_in, ups_out = (by_topic[f"{root}/main-1/activePower"],
                              by_topic[f"{root}/ups-1/input/activePower"],
                              by_topic[f"{root}/ups-1/output/activePower"])
    assert mains["value"] > ups_in["value"] >= ups_out["value"] > 0  # kW along the power path
    meta_root = f"BMS/v1/PUB/Metadata/PowerMeter/ActivePower/{PREFIX}"
    assert metadata[f"{meta_root}/main-1/activePower"]["servesId"] == ["ups-1"]
    assert metadata[f"{meta_root}/ups-1/input/activePower"]["servesId"] == ["ups-1-output"]
    assert metadata[f"{meta_root}/ups-1/output/activePower"]["servesId"] == ["r01", "r02"]
    assert f"BMS/v1/PUB/Value/System/HeartbeatTimestampBms/{PREFIX}/dcim/heartbeat" in by_topic
    # The late subscriber: all the metadata, retained, and no retained value (it also gets the
    # values published while it listens, live).
    assert set(metadata) == {m.topic for m in got if "/Metadata/" in m.topic}
    assert all(m.retain for m in late if "/Metadata/" in m.topic)
