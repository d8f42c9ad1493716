"""The NVIDIA DSX Exchange "BMS event bus" layout: topics, value and metadata payloads (pure).

Followed: BMS Event Bus 1.0.0 (docs.nvidia.com/dsx-exchange/schema/bms-event-bus, its Rack and
CDU Value/Metadata pages and its Schemas page). dcim publishes as the BMS-side publisher of the
points it measures:

    BMS/v1/PUB/Value/{objectType}/{pointType}/{tagPath}     {"value", "timestamp", "quality"}
    BMS/v1/PUB/Metadata/{objectType}/{pointType}/{tagPath}  retained description of the point

Rack points (objectType Rack): RackPower (kW) for every rack; RackLiquidSupplyTemperature,
RackLiquidReturnTemperature (C), RackLiquidFlow (LPM), RackLiquidDifferentialPressure (kPa) and
RackLeakDetect (0/1 with stateText) for a rack whose CDU serves that rack alone, because only
then are the CDU's secondary readings the rack's own. Every CDU is also published as an
equipment object (objectType CDU: LiquidTemperature supply/return, LiquidFlow,
LiquidDifferentialPressure, LeakDetect) with servesId naming its racks.

A value that is withheld (incomplete or stale inputs) is sent as value null, quality 0.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from dcim.compute.snapshot import DeviceStatus, Published

ROOT = "BMS/v1/PUB"
LEAK_STATES = ({"value": 0, "text": "NoLeak"}, {"value": 1, "text": "Leak"})
GOOD = 1
BAD = 0


@dataclass(frozen=True, slots=True)
class DsxPoint:
    """One point on the bus: where it goes, what describes it, and its current reading."""

    object_type: str
    point_type: str
    tag_path: str
    metadata: Mapping[str, Any]
    value: float | None
    time: float  # epoch seconds of the reading (poll time, or snapshot time for computed values)

    @property
    def value_topic(self) -> str:
        """BMS/v1/PUB/Value/..."""
        return f"{ROOT}/Value/{self.object_type}/{self.point_type}/{self.tag_path}"

    @property
    def metadata_topic(self) -> str:
        """BMS/v1/PUB/Metadata/..."""
        return f"{ROOT}/Metadata/{self.object_type}/{self.point_type}/{self.tag_path}"

    def value_payload(self) -> dict[str, Any]:
        """{"value", "timestamp" (epoch ms), "quality"}; null and quality 0 when withheld."""
        return value_payload(self.value, self.time)


def value_payload(value: float | None, time_s: float) -> dict[str, Any]:
    """The DSX value envelope."""
    return {"value": value, "timestamp": round(time_s * 1000),
            "quality": GOOD if value is not None else BAD}


def _rack_meta(point_type: str, rack: str, **unit: Any) -> dict[str, Any]:
    return {"objectType": "Rack", "pointType": point_type, "rackLocationName": rack,
            "rackLocationId": rack, **unit}


def _cdu_meta(point_type: str, cdu: str, serves: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    return {"objectType": "CDU", "pointType": point_type, "objectName": cdu, "objectId": cdu,
            "servesId": list(serves), **extra}


# canonical CDU point -> (Rack pointType, CDU pointType, unit fields, CDU processArea, tag suffix)
_LIQUID: tuple[tuple[str, str, str, dict[str, Any], list[str], str], ...] = (
    ("supply_temp_c", "RackLiquidSupplyTemperature", "LiquidTemperature", {"engUnit": "C"},
     ["Secondary", "Supply"], "secondary-supply"),
    ("return_temp_c", "RackLiquidReturnTemperature", "LiquidTemperature", {"engUnit": "C"},
     ["Secondary", "Return"], "secondary-return"),
    ("flow_lpm", "RackLiquidFlow", "LiquidFlow", {"engUnit": "LPM"}, ["Secondary"],
     "secondary-flow"),
    ("diff_pressure_kpa", "RackLiquidDifferentialPressure", "LiquidDifferentialPressure",
     {"engUnit": "kPa"}, ["Secondary"], "secondary-dp"),
    ("leak", "RackLeakDetect", "LeakDetect", {"stateText": [dict(s) for s in LEAK_STATES]}, [],
     "leak"),
)


def _reading(dev: DeviceStatus | None, point: str) -> tuple[float | None, float | None]:
    """A fresh scalar value of a device point and its poll time."""
    if dev is None:
        return None, None
    value = dev.values.get(point) if dev.fresh else None
    if isinstance(value, Mapping):
        value = float(sum(value.values()))
    return (float(value) if value is not None else None), dev.last_poll


def dsx_points(pub: Published, tag_prefix: str | None = None) -> Iterator[DsxPoint]:
    """Every DSX point of one snapshot."""
    snap = pub.snapshot
    prefix = tag_prefix or pub.site.name
    for rack in snap.racks.values():
        power = rack.power_w / 1000.0 if rack.power_w is not None else None
        yield DsxPoint("Rack", "RackPower", f"{prefix}/{rack.id}",
                       _rack_meta("RackPower", rack.id, engUnit="kW"), power, snap.time)
    for spec in pub.site.devices.values():
        if spec.kind != "cdu":
            continue
        dev = snap.devices.get(spec.id)
        for point, rack_type, cdu_type, unit, area, suffix in _LIQUID:
            if point not in spec.profile.points:
                continue
            value, when = _reading(dev, point)
            stamp = when if when is not None else snap.time
            extra: dict[str, Any] = {**unit}
            if area:
                extra["processArea"] = area
            yield DsxPoint("CDU", cdu_type, f"{prefix}/{spec.id}/{suffix}",
                           _cdu_meta(cdu_type, spec.id, spec.serves, **extra), value, stamp)
            if len(spec.serves) == 1:
                rack_id = spec.serves[0]
                yield DsxPoint("Rack", rack_type, f"{prefix}/{rack_id}",
                               _rack_meta(rack_type, rack_id, **unit), value, stamp)
