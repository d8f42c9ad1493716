"""Validating DSX BMS event bus messages against the project's schema (tests/fixtures/dsx_bms_schema.json)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

SCHEMA = json.loads((Path(__file__).resolve().parent.parent / "fixtures" / "dsx_bms_schema.json").read_text())
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
