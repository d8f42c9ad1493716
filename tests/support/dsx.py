"""Checking DSX BMS event bus messages against our strict JSON Schema 2020-12.

The schema (tests/fixtures/dsx_bms_schema.json) describes one message as a subscriber receives
it: `{"topic", "retain", "qos", "payload"}`. It checks the topic template, the value envelope,
the metadata of each objectType/pointType (no field beyond the published ones), engUnit XOR
stateText, the units and the retain flag. What one message cannot show is checked across a
whole capture by capture_errors(): a tagPath per point, and metadata for every value.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator
from jsonschema.exceptions import best_match

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "dsx_bms_schema.json"
SCHEMA = json.loads(SCHEMA_PATH.read_text())
Draft202012Validator.check_schema(SCHEMA)
VALIDATOR = Draft202012Validator(SCHEMA)
ROOT = "BMS/v1/PUB/"


@dataclass(frozen=True)
class BusMessage:
    """One message as the broker delivered it (or as dcim hands it to the broker)."""

    topic: str
    payload: Any
    retain: bool
    qos: int = 0

    def document(self) -> dict[str, Any]:
        """The instance the schema validates."""
        return {"topic": self.topic, "retain": self.retain, "qos": self.qos, "payload": self.payload}


def message_errors(message: BusMessage) -> list[str]:
    """Why one message breaks the schema (empty when it conforms)."""
    errors = list(VALIDATOR.iter_errors(message.document()))
    if not errors:
        return []
    best = best_match(errors)
    where = "/".join(str(p) for p in best.absolute_path) or "(message)"
    return [f"{message.topic}: {where}: {best.message}"]


def _split(topic: str) -> tuple[str, str, str, str]:
    """(kind, objectType, pointType, tagPath) of a BMS/v1/PUB topic."""
    kind, object_type, point_type, tag_path = topic[len(ROOT):].split("/", 3)
    return kind, object_type, point_type, tag_path


def capture_errors(messages: Iterable[BusMessage]) -> list[str]:
    """Every message against the schema, then the rules that span messages.

    - a tagPath belongs to exactly one point (one objectType/pointType);
    - every value has metadata on the same objectType/pointType/tagPath;
    - every point of one PowerMeter object gives the same servesId (each metadata message is
      read on its own, so the power path must be on all of them).
    """
    messages = list(messages)
    errors = [e for m in messages for e in message_errors(m)]
    owners: dict[str, set[tuple[str, str]]] = {}
    metadata: dict[str, Mapping[str, Any]] = {}
    values: set[str] = set()
    for m in messages:
        if not m.topic.startswith(ROOT):
            continue
        kind, object_type, point_type, tag_path = _split(m.topic)
        owners.setdefault(tag_path, set()).add((object_type, point_type))
        tail = f"{object_type}/{point_type}/{tag_path}"
        if kind == "Metadata":
            metadata[tail] = m.payload
        else:
            values.add(tail)
    errors += [f"tagPath {t} is shared by {sorted(o)}" for t, o in owners.items() if len(o) > 1]
    errors += [f"value {t} has no metadata" for t in sorted(values - metadata.keys())]
    serves: dict[str, set[tuple[str, ...]]] = {}
    for meta in metadata.values():
        if isinstance(meta, Mapping) and meta.get("objectType") == "PowerMeter":
            serves.setdefault(str(meta.get("objectId")), set()).add(tuple(meta.get("servesId", ())))
    errors += [f"PowerMeter {o} has differing servesId {sorted(s)}" for o, s in serves.items()
               if len(s) > 1]
    return errors
