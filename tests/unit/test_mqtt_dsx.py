"""DSX BMS event bus mapping (pure): topics, payloads, metadata, validated against our schema."""

from __future__ import annotations

from support.dsx import SCHEMA, validate, validate_message
from support.sink_site import World, make_site

from dcim.config import MqttExporter
from dcim.sinks.dsx import dsx_points, value_payload
from dcim.sinks.mqtt import MqttSink

T0 = 1_760_000_000.0

def _world() -> World:
    world = World()
    world.poll_all(T0, rack_kw=80.0)
    return world


def test_rack_power_in_kw_with_snapshot_time() -> None:
    pub = _world().published(T0 + 0.5)
    points = {p.value_topic: p for p in dsx_points(pub)}
    power = points["BMS/v1/PUB/Value/Rack/RackPower/hall-1/r01"]
    assert power.value_payload() == {"value": 80.0, "timestamp": round((T0 + 0.5) * 1000),
                                     "quality": 1}
    assert power.metadata_topic == "BMS/v1/PUB/Metadata/Rack/RackPower/hall-1/r01"
    assert power.metadata == {"objectType": "Rack", "pointType": "RackPower",
                              "rackLocationName": "r01", "rackLocationId": "r01",
                              "engUnit": "kW"}


def test_rack_liquid_points_only_from_a_cdu_serving_that_rack_alone() -> None:
    pub = _world().published(T0 + 0.5)
    rack_types = {(p.point_type, p.tag_path) for p in dsx_points(pub) if p.object_type == "Rack"}
    assert ("RackLiquidSupplyTemperature", "hall-1/r01") in rack_types  # cdu-1 serves r01 only
    assert ("RackLeakDetect", "hall-1/r01") in rack_types
    assert not any(t == "hall-1/r02" and pt != "RackPower" for pt, t in rack_types)
    cdu2 = [p for p in dsx_points(pub) if p.object_type == "CDU" and "/cdu-2/" in p.tag_path]
    assert {p.point_type for p in cdu2} == {"LiquidTemperature", "LiquidFlow",
                                            "LiquidDifferentialPressure", "LeakDetect"}
    assert all(p.metadata["servesId"] == ["r01", "r02"] for p in cdu2)
    supply = next(p for p in cdu2 if p.tag_path.endswith("secondary-supply"))
    assert supply.metadata["processArea"] == ["Secondary", "Supply"]
    assert supply.value_payload()["timestamp"] == round(T0 * 1000)  # the CDU's poll time


def test_withheld_value_is_null_with_quality_0() -> None:
    world = _world()
    world.fail("r01-pdu-a", T0 + 1)
    points = {p.value_topic: p for p in dsx_points(world.published(T0 + 1.5))}
    payload = points["BMS/v1/PUB/Value/Rack/RackPower/hall-1/r01"].value_payload()
    assert payload["value"] is None and payload["quality"] == 0
    assert validate(payload, SCHEMA["definitions"]["value"]) == []


def test_every_message_validates_against_the_schema() -> None:
    world = _world()
    for pub in (world.published(T0 + 0.5), World().published(T0)):  # full, and nothing polled
        for point in dsx_points(pub, "site-a/hall-1"):
            assert validate_message(point.value_topic, point.value_payload()) == [], point
            assert validate_message(point.metadata_topic, dict(point.metadata)) == [], point


def test_schema_rejects_what_the_bus_forbids() -> None:
    defs = SCHEMA["definitions"]
    assert validate({"value": 1, "timestamp": 1.5, "quality": 1}, defs["value"])
    assert validate({"value": "1", "timestamp": 1, "quality": 1}, defs["value"])
    assert validate({"value": 1, "timestamp": 1, "quality": 1, "unit": "kW"}, defs["value"])
    assert validate_message("BMS/v1/PUB/Metadata/Rack/RackPower/x/r1", {
        "objectType": "Rack", "pointType": "RackPower", "rackLocationName": "r1",
        "rackLocationId": "r1", "engUnit": "W"})
    assert value_payload(None, 1.0) == {"value": None, "timestamp": 1000, "quality": 0}


def test_sink_publishes_on_change_and_republishes_every_interval() -> None:
    config = MqttExporter.model_validate({"host": "127.0.0.1", "dsx": True, "plain": False,
                                          "dsx_republish": "100s"})
    sink = MqttSink(config, make_site())
    world = _world()
    topic = "BMS/v1/PUB/Value/Rack/RackPower/hall-1/r01"
    sink._dsx(world.published(T0 + 0.5), T0 + 0.5)
    assert topic in sink._dirty
    sink._dirty.clear()
    world.poll("cdu-1", T0 + 1, {"supply_temp_c": 30.0})  # r01 power unchanged
    sink._dsx(world.published(T0 + 1.5), T0 + 1.5)
    assert topic not in sink._dirty
    assert "BMS/v1/PUB/Metadata/Rack/RackPower/hall-1/r01" not in sink._dirty
    world.poll_all(T0 + 99, rack_kw=80.0)  # same value, 100 s later
    sink._dsx(world.published(T0 + 99.5), T0 + 99.5)
    assert topic not in sink._dirty
    world.poll_all(T0 + 100, rack_kw=80.0)
    sink._dsx(world.published(T0 + 100.5), T0 + 100.5)
    assert topic in sink._dirty
    assert sink._state[topic].payload["value"] == 80.0
    assert "BMS/v1/PUB/Metadata/Rack/RackPower/hall-1/r01" in sink._dirty
