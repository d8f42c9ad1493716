"""DSX BMS event bus mapping (pure): topics, payloads, metadata, validated against our schema."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from sink_site import World, make_site

from dcim.config import MqttExporter
from dcim.sinks.dsx import dsx_points, value_payload
from dcim.sinks.mqtt import MqttSink

SCHEMA = json.loads((Path(__file__).parent / "dsx_bms_schema.json").read_text())
T0 = 1_760_000_000.0

_TYPES = {"object": dict, "array": list, "string": str, "integer": int, "boolean": bool,
          "null": type(None)}


def _is(value: Any, kind: str) -> bool:
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, _TYPES[kind])


def validate(instance: Any, schema: dict[str, Any], path: str = "$") -> list[str]:
    """The subset of JSON Schema our schema file uses; a list of violations."""
    if "$ref" in schema:
        schema = SCHEMA["definitions"][schema["$ref"].rsplit("/", 1)[1]]
    errors = []
    kinds = schema.get("type")
    if kinds is not None:
        kinds = [kinds] if isinstance(kinds, str) else kinds
        if not any(_is(instance, k) for k in kinds):
            return [f"{path}: {instance!r} is not {kinds}"]
    if "enum" in schema and instance not in schema["enum"]:
        errors.append(f"{path}: {instance!r} not in {schema['enum']}")
    if "minLength" in schema and isinstance(instance, str) and len(instance) < schema["minLength"]:
        errors.append(f"{path}: too short")
    if isinstance(instance, dict):
        for key in schema.get("required", []):
            if key not in instance:
                errors.append(f"{path}: missing {key}")
        props = schema.get("properties", {})
        for key, value in instance.items():
            if key in props:
                errors += validate(value, props[key], f"{path}.{key}")
            elif schema.get("additionalProperties") is False:
                errors.append(f"{path}: unexpected {key}")
        forbidden = schema.get("not", {}).get("required", [])
        if forbidden and all(k in instance for k in forbidden):
            errors.append(f"{path}: must not have {forbidden}")
    if isinstance(instance, list) and "items" in schema:
        for i, item in enumerate(instance):
            errors += validate(item, schema["items"], f"{path}[{i}]")
    return errors


def validate_message(topic: str, payload: dict[str, Any]) -> list[str]:
    """Validate one DSX message by its topic."""
    defs = SCHEMA["definitions"]
    if topic.startswith("BMS/v1/PUB/Value/"):
        assert re.match(SCHEMA["topics"]["value"], topic), topic
        return validate(payload, defs["value"])
    assert re.match(SCHEMA["topics"]["metadata"], topic), topic
    _, _, _, _, object_type, point_type, *_ = topic.split("/")
    errors = []
    if payload.get("objectType") != object_type or payload.get("pointType") != point_type:
        errors.append("objectType/pointType do not match the topic")
    if ("engUnit" in payload) == ("stateText" in payload):
        errors.append("exactly one of engUnit and stateText")
    if object_type == "Rack":
        errors += validate(payload, defs["rackMetadata"])
        for key, want in defs["rackUnits"].get(point_type, {}).items():
            if payload.get(key) != want:
                errors.append(f"{point_type}: {key} must be {want!r}")
    else:
        errors += validate(payload, defs["cduMetadata"])
    return errors


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
