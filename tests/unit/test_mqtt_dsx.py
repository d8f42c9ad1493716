"""DSX BMS event bus layout (pure): topics, payloads, metadata and the sink's retain/QoS,
validated against our strict JSON Schema 2020-12 (tests/fixtures/dsx_bms_schema.json)."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest
from pydantic import ValidationError
from support.dsx import BusMessage, capture_errors, message_errors
from support.sink_site import SITE_CONFIG, World, make_site

from dcim.config import MqttSinkConfig, parse_config
from dcim.errors import ConfigError
from dcim.points import Kind
from dcim.profile import ProfileRegistry
from dcim.sinks.dsx import (
    DEVICE_OBJECTS,
    HEARTBEAT_TAG,
    RACK_POINTS,
    RACK_POWER_TAG,
    dsx_points,
    value_payload,
)
from dcim.sinks.mqtt import MqttSink
from dcim.site import build_site, restrict_to_shard

T0 = 1_760_000_000.0
VALUE = "BMS/v1/PUB/Value"
META = "BMS/v1/PUB/Metadata"

# The test site plus a UPS fed by the mains and feeding both racks, and a chiller.
POWER_PATH = {"devices": [
    *[{**d, "serves": ["ups-1"]} if d["id"] == "main-1" else d for d in SITE_CONFIG["devices"]],
    {"id": "ups-1", "profile": "ups-mib", "host": "h", "serves": ["r01", "r02"]},
    {"id": "ch-1", "profile": "generic-chiller", "host": "h", "port": 502},
    {"id": "r02-shelf", "profile": "redfish-power-shelf", "host": "h", "rack": "r02", "feed": "B"},
    {"id": "r02-cdu", "profile": "redfish-cdu", "host": "h", "serves": ["r02"]},
]}
UPS_VALUES = {"input_power_w": 168_000.0, "output_power_w": 160_000.0, "load_ratio": 0.4,
              "on_battery": 0.0, "battery_runtime_s": 1200.0, "battery_charge_ratio": 0.97,
              "battery_low": 0.0, "frequency_hz": 50.0,
              "current_a": {"1": 230.0, "2": 231.0, "3": 229.0}}


def _world(extra: dict[str, Any] | None = None) -> World:
    world = World(make_site(extra))
    world.poll_all(T0, rack_kw=80.0)
    return world


def _power_world() -> World:
    world = _world(POWER_PATH)
    world.poll("main-1", T0, {"power_w": 200_000.0, "apparent_power_va": 210_000.0,
                              "frequency_hz": 50.0, "current_a": {"1": 290.0, "2": 291.0, "3": 289.0}})
    world.poll("ups-1", T0, UPS_VALUES)
    world.poll("r02-shelf", T0, {"power_w": 12_000.0, "frequency_hz": 60.0,
                                 "current_a": {"L1": 10.0, "L2": 11.0, "L3": 12.0}})
    world.poll("r02-cdu", T0, {"supply_temp_c": 31.0, "return_temp_c": 41.0,  # no flow reading
                               "heat_w": 65_000.0, "leak": 0.0})
    world.poll("ch-1", T0, {"power_w": 40_000.0, "chw_supply_temp_c": 14.0,
                            "chw_return_temp_c": 20.0, "cooling_w": 180_000.0, "fault": 0.0})
    return world


def _points(world: World, now: float = T0 + 0.5) -> dict[str, Any]:
    return {p.value_topic: p for p in dsx_points(world.published(now))}


def _sent(sink: MqttSink) -> list[BusMessage]:
    """What the sink hands to the broker, as the schema sees a message."""
    return [BusMessage(m.topic, m.payload, m.retain, m.qos) for m in sink._state.values()]


def _dsx_sink(**kw: Any) -> MqttSink:
    config = MqttSinkConfig.model_validate({"host": "127.0.0.1", "dsx": True, "plain": False, **kw})
    return MqttSink(config, make_site(POWER_PATH))


def test_rack_power_has_a_tag_path_of_its_own() -> None:
    power = _points(_world())[f"{VALUE}/Rack/RackPower/hall-1/r01/power"]
    assert power.value_payload() == {"value": 80.0, "timestamp": round((T0 + 0.5) * 1000),
                                     "quality": 1}
    assert power.metadata_topic == f"{META}/Rack/RackPower/hall-1/r01/power"
    assert power.metadata == {"objectType": "Rack", "pointType": "RackPower",
                              "rackLocationName": "r01", "rackLocationId": "r01",
                              "engUnit": "kW"}


def test_every_point_has_a_unique_tag_path() -> None:
    points = list(dsx_points(_power_world().published(T0 + 0.5)))
    tags = [p.tag_path for p in points]
    assert len(tags) == len(set(tags)) > 50
    # A rack and a device with the same id still differ: rack tags are never device tags.
    device_tags = {pm.tag.split("/")[-1] for objs in DEVICE_OBJECTS.values() for o in objs
                   for pm in o.points}
    assert not device_tags & {RACK_POWER_TAG, *(pm.tag for pm in RACK_POINTS),
                              HEARTBEAT_TAG.split("/")[-1]}
    # Within a device, tags are unique too (a new table row cannot silently overwrite another).
    for objs in DEVICE_OBJECTS.values():
        kind_tags = [pm.tag for o in objs for pm in o.points]
        assert len(kind_tags) == len(set(kind_tags))


def test_rack_liquid_points_only_from_a_cdu_serving_that_rack_alone() -> None:
    points = list(dsx_points(_world().published(T0 + 0.5)))
    rack = {p.tag_path: p.point_type for p in points if p.object_type == "Rack"}
    assert rack["hall-1/r01/supplyTemperature"] == "RackLiquidSupplyTemperature"  # cdu-1: r01 only
    assert rack["hall-1/r01/leak"] == "RackLeakDetect"
    assert [t for t in rack if t.startswith("hall-1/r02/")] == ["hall-1/r02/power"]
    cdu2 = {p.tag_path: p for p in points if p.object_type == "CDU" and "/cdu-2/" in p.tag_path}
    assert {p.point_type for p in cdu2.values()} == {
        "LiquidTemperature", "LiquidFlow", "LiquidDifferentialPressure", "LeakDetect", "GenericPoint"}
    assert all(p.metadata["servesId"] == ["r01", "r02"] for p in cdu2.values())
    supply = cdu2["hall-1/cdu-2/secondarySupplyTemperature"]
    assert supply.metadata["processArea"] == ["Secondary", "Supply"]
    assert supply.value_payload()["timestamp"] == round(T0 * 1000)  # the CDU's poll time
    leak = cdu2["hall-1/cdu-2/leakDetect"]
    assert leak.value == 0 and isinstance(leak.value, int)  # a state is its stateText integer
    heat = cdu2["hall-1/cdu-2/heatRemoved"]
    assert heat.metadata["engUnit"] == "kW" and heat.value == pytest.approx(200.8575)


def test_power_path_meters_with_serves_id() -> None:
    points = _points(_power_world())
    main = points[f"{VALUE}/PowerMeter/ActivePower/hall-1/main-1/activePower"]
    assert main.value == 200.0 and main.metadata["servesId"] == ["ups-1"]
    assert points[f"{VALUE}/PowerMeter/ApparentPower/hall-1/main-1/apparentPower"].value == 210.0
    phase2 = points[f"{VALUE}/PowerMeter/PhaseCurrent/hall-1/main-1/phaseCurrent2"]
    assert (phase2.value, phase2.metadata["phase"], phase2.metadata["engUnit"]) == (291.0, "2", "A")
    ups_in = points[f"{VALUE}/PowerMeter/ActivePower/hall-1/ups-1/input/activePower"]
    ups_out = points[f"{VALUE}/PowerMeter/ActivePower/hall-1/ups-1/output/activePower"]
    assert (ups_in.value, ups_in.metadata["objectId"], ups_in.metadata["servesId"]) == (
        168.0, "ups-1", ["ups-1-output"])
    assert (ups_out.value, ups_out.metadata["objectId"], ups_out.metadata["servesId"]) == (
        160.0, "ups-1-output", ["r01", "r02"])
    pdu = points[f"{VALUE}/PowerMeter/ActivePower/hall-1/r01-pdu-a/activePower"]
    assert (pdu.value, pdu.metadata["servesId"]) == (40.0, ["r01"])
    shelf = points[f"{VALUE}/PowerMeter/ActivePower/hall-1/r02-shelf/activePower"]
    assert (shelf.value, shelf.metadata["servesId"]) == (12.0, ["r02"])
    assert not any("/r02-shelf/phaseCurrent" in t for t in points)
    # A Redfish CDU serving r02 alone: its reported heat (no flow to compute it), r02's liquid.
    assert points[f"{VALUE}/CDU/GenericPoint/hall-1/r02-cdu/heatRemoved"].value == 65.0
    assert points[f"{VALUE}/Rack/RackLiquidSupplyTemperature/hall-1/r02/supplyTemperature"].value == 31.0
    chiller = points[f"{VALUE}/PowerMeter/ActivePower/hall-1/ch-1/activePower"]
    assert chiller.value == 40.0


def test_ups_and_chiller_points_associate_with_their_power_meter() -> None:
    points = list(dsx_points(_power_world().published(T0 + 0.5)))
    ups = {p.tag_path: p for p in points if p.object_type == "UPS"}
    assert {p.point_type for p in ups.values()} <= {"Status", "Available", "GenericPoint"}
    status = ups["hall-1/ups-1/onBattery"]
    assert status.point_type == "Status" and status.value == 0
    assert status.metadata["associateId"] == "ups-1-output"
    assert not {"objectId", "objectName", "servesId"} & status.metadata.keys()
    assert ups["hall-1/ups-1/batteryCharge"].value == pytest.approx(97.0)
    assert ups["hall-1/ups-1/batteryCharge"].metadata["processArea"] == ["Battery", "Charge"]
    chiller = {p.tag_path: p for p in points if p.object_type == "Chiller"}
    supply = chiller["hall-1/ch-1/chilledWaterSupplyTemperature"]
    assert (supply.value, supply.metadata["associateId"]) == (14.0, "ch-1")


def test_withheld_value_is_null_with_quality_0() -> None:
    world = _world()
    world.fail("r01-pdu-a", T0 + 1)
    payload = _points(world, T0 + 1.5)[f"{VALUE}/Rack/RackPower/hall-1/r01/power"].value_payload()
    assert payload["value"] is None and payload["quality"] == 0
    assert value_payload(None, 1.0) == {"value": None, "timestamp": 1000, "quality": 0}


@pytest.mark.parametrize("qos", [0, 1])
def test_every_message_the_sink_sends_conforms(qos: int) -> None:
    for world in (_power_world(), World(make_site(POWER_PATH))):  # all polled, and nothing
        sink = _dsx_sink(dsx_tag_prefix="site-a/hall-1", dsx_qos=qos)
        sink._dsx(world.published(T0 + 0.5), T0 + 0.5)
        sent = _sent(sink)
        assert capture_errors(sent) == []
        assert {m.qos for m in sent if "/Value/" in m.topic} == {qos}
        assert all(m.retain == ("/Metadata/" in m.topic) for m in sent)
        assert {m.topic.split("/")[4] for m in sent} == {"Rack", "PowerMeter", "CDU", "UPS", "Chiller",
                                                         "System"}


def test_heartbeat_every_10_s() -> None:
    sink = _dsx_sink()
    world = _world(POWER_PATH)
    topic = f"{VALUE}/System/HeartbeatTimestampBms/hall-1/dcim/heartbeat"
    sent = []
    for i in range(25):  # a snapshot a second
        sink._dsx(world.published(T0 + i), T0 + i)
        if topic in sink._dirty:
            sent.append(sink._state[topic].payload["value"])
            sink._dirty.clear()
    assert sent == [round(T0 * 1000), round((T0 + 10) * 1000), round((T0 + 20) * 1000)]
    meta = sink._state[f"{META}/System/HeartbeatTimestampBms/hall-1/dcim/heartbeat"].payload
    assert meta == {"objectType": "System", "pointType": "HeartbeatTimestampBms",
                    "objectName": "dcim hall-1", "objectId": "dcim-hall-1",
                    "scope": "BMS/v1/PUB/+/+/+/hall-1/#"}


def test_each_shard_has_a_heartbeat_of_its_own() -> None:
    world = _world()
    beats = {}
    for i in range(2):
        pub = world.published(T0)
        pub = replace(pub, site=restrict_to_shard(pub.site, i, 2))
        beat = next(p for p in dsx_points(pub) if p.point_type == "HeartbeatTimestampBms")
        assert message_errors(BusMessage(beat.metadata_topic, dict(beat.metadata), True)) == []
        beats[beat.tag_path] = beat.metadata["objectId"]
    assert beats == {"hall-1/dcim/heartbeat-0-of-2": "dcim-hall-1-0-of-2",
                     "hall-1/dcim/heartbeat-1-of-2": "dcim-hall-1-1-of-2"}


def test_value_qos_defaults_to_0_and_rejects_2() -> None:
    assert MqttSinkConfig.model_validate({"host": "h"}).dsx_qos == 0
    with pytest.raises(ValidationError):
        MqttSinkConfig.model_validate({"host": "h", "dsx_qos": 2})
    for prefix in ("a/+/b", "a//b", "has space", "/a", "a/#"):
        with pytest.raises(ValidationError):
            MqttSinkConfig.model_validate({"host": "h", "dsx_tag_prefix": prefix})


def _good() -> dict[str, BusMessage]:
    sink = _dsx_sink()
    sink._dsx(_power_world().published(T0 + 0.5), T0 + 0.5)
    return {m.topic: m for m in _sent(sink)}


def _changed(message: BusMessage, *, topic: str | None = None, retain: bool | None = None,
             **payload: Any) -> BusMessage:
    body = copy.deepcopy(message.payload)
    for key, value in payload.items():
        if value is None:
            body.pop(key, None)
        else:
            body[key] = value
    return BusMessage(topic or message.topic, body, message.retain if retain is None else retain,
                      message.qos)


def test_schema_rejects_what_the_bus_forbids() -> None:
    good = _good()
    power_v = good[f"{VALUE}/Rack/RackPower/hall-1/r01/power"]
    power_m = good[f"{META}/Rack/RackPower/hall-1/r01/power"]
    cdu_t = good[f"{META}/CDU/LiquidTemperature/hall-1/cdu-1/secondarySupplyTemperature"]
    cdu_flow = good[f"{META}/CDU/LiquidFlow/hall-1/cdu-1/secondaryFlow"]
    meter = good[f"{META}/PowerMeter/ActivePower/hall-1/main-1/activePower"]
    phase = good[f"{META}/PowerMeter/PhaseCurrent/hall-1/main-1/phaseCurrent1"]
    ups = good[f"{META}/UPS/Status/hall-1/ups-1/onBattery"]
    generic = good[f"{META}/UPS/GenericPoint/hall-1/ups-1/batteryCharge"]
    for message in (power_v, power_m, cdu_t, cdu_flow, meter, phase, ups, generic):
        assert message_errors(message) == [], message.topic
    bad = {
        "value retained": _changed(power_v, retain=True),
        "metadata not retained": _changed(power_m, retain=False),
        "float timestamp": _changed(power_v, timestamp=1.5),
        "string value": _changed(power_v, value="80"),
        "extra value field": _changed(power_v, unit="kW"),
        "no quality": _changed(power_v, quality=None),
        "extra rack field": _changed(power_m, processArea=["x"]),
        "rack power in W": _changed(power_m, engUnit="W"),
        "rack without rackLocationId": _changed(power_m, rackLocationId=None),
        "objectType not the topic's": _changed(power_m, objectType="CDU"),
        "pointType not the topic's": _changed(power_m, pointType="RackLiquidFlow", engUnit="LPM"),
        "engUnit and stateText": _changed(cdu_flow, stateText=[{"value": 0, "text": "Off"}]),
        "neither engUnit nor stateText": _changed(cdu_flow, engUnit=None),
        "LiquidTemperature in F": _changed(cdu_t, engUnit="F"),
        "named and associate": _changed(cdu_t, associateId="x"),
        "meter without servesId": _changed(meter, servesId=None),
        "meter ActivePower in W": _changed(meter, engUnit="W"),
        "PhaseCurrent without phase": _changed(phase, phase=None),
        "phase D": _changed(phase, phase="D"),
        "associate with objectId": _changed(ups, objectId="ups-1"),
        "associate with servesId": _changed(ups, servesId=["r01"]),
        "GenericPoint without processArea": _changed(generic, processArea=None),
        "UPS ActivePower": _changed(meter, topic=f"{META}/UPS/ActivePower/hall-1/ups-1/p",
                                    objectType="UPS"),
        "UPS ActivePower value": _changed(power_v, topic=f"{VALUE}/UPS/ActivePower/hall-1/ups-1/p"),
        "wildcard in tagPath": _changed(power_v, topic=f"{VALUE}/Rack/RackPower/hall-1/+/power"),
        "empty tagPath segment": _changed(power_v, topic=f"{VALUE}/Rack/RackPower/hall-1//power"),
        "no tagPath": _changed(power_v, topic=f"{VALUE}/Rack/RackPower"),
        "not the PUB namespace": _changed(power_v, topic="BMS/v1/dcim/Value/Rack/RackPower/x/power"),
    }
    for name, message in bad.items():
        assert message_errors(message), name


def test_capture_check_finds_shared_tag_paths_and_values_without_metadata() -> None:
    good = _good()
    power_v = good[f"{VALUE}/Rack/RackPower/hall-1/r01/power"]
    flow_v = _changed(power_v, topic=f"{VALUE}/Rack/RackLiquidFlow/hall-1/r01/power")
    errors = capture_errors([*good.values(), flow_v])
    assert any("shared by" in e for e in errors) and any("no metadata" in e for e in errors)
    meter = good[f"{META}/PowerMeter/Frequency/hall-1/main-1/frequency"]
    assert any("differing servesId" in e
               for e in capture_errors([*good.values(), _changed(meter, servesId=["x"])]))


def test_sink_publishes_on_change_and_republishes_every_interval() -> None:
    sink = _dsx_sink(dsx_republish="100s")
    world = _world(POWER_PATH)
    topic = f"{VALUE}/Rack/RackPower/hall-1/r01/power"
    meta = f"{META}/Rack/RackPower/hall-1/r01/power"
    sink._dsx(world.published(T0 + 0.5), T0 + 0.5)
    assert topic in sink._dirty and not sink._state[topic].retain and sink._state[meta].retain
    sink._dirty.clear()
    world.poll("cdu-1", T0 + 1, {"supply_temp_c": 30.0})  # r01 power unchanged
    sink._dsx(world.published(T0 + 1.5), T0 + 1.5)
    assert topic not in sink._dirty and meta not in sink._dirty
    world.poll_all(T0 + 99, rack_kw=80.0)  # same value, 100 s later
    sink._dsx(world.published(T0 + 99.5), T0 + 99.5)
    assert topic not in sink._dirty
    world.poll_all(T0 + 100, rack_kw=80.0)
    sink._dsx(world.published(T0 + 100.5), T0 + 100.5)
    assert topic in sink._dirty and meta in sink._dirty
    assert sink._state[topic].payload["value"] == 80.0


def test_reconnect_resends_retained_metadata_but_not_sent_values() -> None:
    sink = _dsx_sink()
    sink._dsx(_world(POWER_PATH).published(T0 + 0.5), T0 + 0.5)
    sink._dirty.clear()  # all sent
    sink._on_connected()
    assert sink._dirty and all(sink._state[t].retain for t in sink._dirty)
    assert f"{META}/Rack/RackPower/hall-1/r01/power" in sink._dirty


def test_meters_and_ups_serve_racks_or_devices() -> None:
    registry = ProfileRegistry.load()
    site = build_site(parse_config({**SITE_CONFIG, **POWER_PATH}), registry)
    assert site.devices["main-1"].serves == ("ups-1",)
    for serves, device, message in (
            (["nowhere"], "main-1", "unknown rack or device 'nowhere'"),
            (["main-1"], "r01-pdu-a", "a pdu serves nothing"),
            (["ups-1"], "cdu-1", "unknown rack 'ups-1'")):
        devices = [{**d, "serves": serves} if d["id"] == device else d
                   for d in POWER_PATH["devices"]]
        with pytest.raises(ConfigError, match=message):
            build_site(parse_config({**SITE_CONFIG, "devices": devices}), registry)
    assert Kind.UPS in DEVICE_OBJECTS and Kind.METER in DEVICE_OBJECTS
