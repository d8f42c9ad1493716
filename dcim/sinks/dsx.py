"""The NVIDIA DSX Exchange "BMS event bus" layout: topics, value and metadata payloads (pure).

Followed: the BMS Event Bus 1.0.0 AsyncAPI document and its integration guide (NVIDIA
dsx-exchange). dcim publishes as the BMS-side publisher (`PUB`) of the points it measures:

    BMS/v1/PUB/Value/{objectType}/{pointType}/{tagPath}     {"value", "timestamp", "quality"}
    BMS/v1/PUB/Metadata/{objectType}/{pointType}/{tagPath}  description of the point (retained)

Every point has a tagPath of its own, `{prefix}/{rack or device}/{tag}`: consumers correlate a
value with its metadata by tagPath alone. Which device point becomes which DSX point is data
(DEVICE_OBJECTS, RACK_POINTS below): a new device kind or point is a table row, not code.

- Racks (objectType Rack): RackPower for every rack; the liquid points and RackLeakDetect for a
  rack whose CDU serves that rack alone, because only then are the CDU's secondary readings the
  rack's own.
- Electrical meters, rack PDUs and power shelves, each side of a UPS and a chiller's supply are
  PowerMeter objects (ActivePower, ...) whose `servesId` gives the power path: a PDU or shelf
  serves its rack, a UPS input (objectId = the UPS id) serves its output, and a meter or UPS
  output serves what its `serves` names.
- Points the bus has no PowerMeter pointType for are published on the equipment's own
  objectType in associate mode (`associateId` = its PowerMeter): a UPS's on-battery Status and
  battery figures (GenericPoint), a chiller's water temperatures.
- A CDU is a named object (servesId = its racks) with its secondary loop points.
- dcim's own System HeartbeatTimestampBms, every 10 s.

A value that is withheld (incomplete or stale inputs) is sent as value null, quality 0.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from dcim.compute.snapshot import DeviceStatus, Published
from dcim.points import Kind
from dcim.site import DeviceSpec

ROOT = "BMS/v1/PUB"
GOOD = 1
BAD = 0

State = tuple[tuple[int, str], ...]
LEAK: State = ((0, "NoLeak"), (1, "Leak"))
FAULT: State = ((0, "NoFault"), (1, "Fault"))


class Mode(StrEnum):
    """How a DSX object identifies itself in its metadata."""

    METER = "meter"          # PowerMeter: objectName, objectId, servesId (required)
    NAMED = "named"          # equipment: objectName, objectId, servesId
    ASSOCIATE = "associate"  # equipment that is part of another object: associateId only


class Source(StrEnum):
    """Where a point's value comes from."""

    DEVICE = "device"    # the device's own reading of that canonical point
    COOLING = "cooling"  # dcim's cooling figures of a CDU (Snapshot.cdus)


@dataclass(frozen=True, slots=True)
class PointMap:
    """How one reading of a device becomes one DSX point."""

    point: str              # canonical point (Source.DEVICE) or CduCooling field (Source.COOLING)
    point_type: str
    tag: str                # tagPath tail under the object, unique within a device
    unit: str | None = None  # engUnit; None with states (stateText) or for unitless points
    scale: float = 1.0       # dcim's unit -> engUnit (W -> kW: 0.001)
    states: State | None = None
    area: tuple[str, ...] = ()
    phase: str | None = None  # PhaseCurrent: the row of a per-phase reading
    source: Source = Source.DEVICE


@dataclass(frozen=True, slots=True)
class ObjectMap:
    """One DSX object of a device kind and the points it carries."""

    object_type: str
    mode: Mode
    points: tuple[PointMap, ...]
    id_suffix: str = ""      # objectId = device id + suffix
    parent: str = ""         # ASSOCIATE: id suffix of the object this one is part of
    feeds: str | None = None  # METER: id suffix of the device's object it serves (else `serves`)


def _kw(point: str, tag: str, point_type: str = "ActivePower") -> PointMap:
    return PointMap(point, point_type, tag, "kW", 0.001)


def _phases(point: str, tag: str) -> tuple[PointMap, ...]:
    # dcim's per-phase rows are numbered 1..3 (meter registers A/B/C, UPS-MIB lines): the bus
    # accepts either convention, one per deployment, and 1/2/3 is what every profile gives.
    return tuple(PointMap(point, "PhaseCurrent", f"{tag}{n}", "A", phase=n) for n in "123")


# PowerMeter pointTypes dcim can fill from a meter-like device. Voltage is left out on
# purpose: the bus means the average line-to-line voltage, dcim's voltage_v is per phase
# (line-to-neutral where the wiring has it).
_METER_POINTS = (
    _kw("power_w", "activePower"),
    PointMap("apparent_power_va", "ApparentPower", "apparentPower", "kVA", 0.001),
    PointMap("power_factor", "PowerFactor", "powerFactor"),
    PointMap("frequency_hz", "Frequency", "frequency", "Hz"),
)

DEVICE_OBJECTS: Mapping[Kind, tuple[ObjectMap, ...]] = {
    Kind.METER: (ObjectMap("PowerMeter", Mode.METER,
                           (*_METER_POINTS, *_phases("current_a", "phaseCurrent"))),),
    # A rack PDU's or power shelf's current rows are its inlet's lines, not the site's phases
    # (which the bus requires PhaseCurrent to follow): no PhaseCurrent for them.
    Kind.PDU: (ObjectMap("PowerMeter", Mode.METER, _METER_POINTS),),
    Kind.SHELF: (ObjectMap("PowerMeter", Mode.METER, _METER_POINTS),),
    Kind.UPS: (
        # The input meter has the UPS's own id, so whatever names the UPS in its `serves` feeds
        # it, with no lookup (a device fed may be in another shard).
        ObjectMap("PowerMeter", Mode.METER, (_kw("input_power_w", "input/activePower"),),
                  feeds="-output"),
        # UPS-MIB's per-line current and the frequency are the output side.
        ObjectMap("PowerMeter", Mode.METER, (
            _kw("output_power_w", "output/activePower"),
            PointMap("frequency_hz", "Frequency", "output/frequency", "Hz"),
            *_phases("current_a", "output/phaseCurrent"),
        ), id_suffix="-output"),
        ObjectMap("UPS", Mode.ASSOCIATE, (
            PointMap("on_battery", "Status", "onBattery", states=((0, "OnLine"), (1, "OnBattery"))),
            PointMap("battery_low", "GenericPoint", "batteryLow", states=((0, "Normal"), (1, "Low")),
                     area=("Battery", "Low")),
            PointMap("battery_charge_ratio", "GenericPoint", "batteryCharge", "%", 100.0,
                     area=("Battery", "Charge")),
            PointMap("battery_runtime_s", "GenericPoint", "batteryRuntime", "s",
                     area=("Battery", "Runtime")),
            PointMap("load_ratio", "GenericPoint", "outputLoad", "%", 100.0, area=("Output", "Load")),
        ), parent="-output"),
    ),
    Kind.CDU: (ObjectMap("CDU", Mode.NAMED, (
        PointMap("supply_temp_c", "LiquidTemperature", "secondarySupplyTemperature", "C",
                 area=("Secondary", "Supply")),
        PointMap("return_temp_c", "LiquidTemperature", "secondaryReturnTemperature", "C",
                 area=("Secondary", "Return")),
        PointMap("flow_lpm", "LiquidFlow", "secondaryFlow", "LPM", area=("Secondary",)),
        PointMap("diff_pressure_kpa", "LiquidDifferentialPressure", "secondaryDifferentialPressure",
                 "kPa", area=("Secondary",)),
        PointMap("leak", "LeakDetect", "leakDetect", states=LEAK),
        PointMap("fault", "GenericPoint", "fault", states=FAULT, area=("Fault",)),
        PointMap("pump_power_w", "GenericPoint", "pumpPower", "kW", 0.001, area=("Pump", "ActivePower")),
        PointMap("heat_w", "GenericPoint", "heatRemoved", "kW", 0.001,
                 area=("Secondary", "HeatRemoved"), source=Source.COOLING),
    )),),
    Kind.CHILLER: (
        ObjectMap("PowerMeter", Mode.METER, (_kw("power_w", "activePower"),)),
        ObjectMap("Chiller", Mode.ASSOCIATE, (
            PointMap("chw_supply_temp_c", "LiquidTemperature", "chilledWaterSupplyTemperature", "C",
                     area=("ChilledWater", "Supply")),
            PointMap("chw_return_temp_c", "LiquidTemperature", "chilledWaterReturnTemperature", "C",
                     area=("ChilledWater", "Return")),
            PointMap("cooling_w", "GenericPoint", "coolingDelivered", "kW", 0.001,
                     area=("CoolingDelivered",)),
            PointMap("fault", "GenericPoint", "fault", states=FAULT, area=("Fault",)),
        )),
    ),
}

# Rack pointTypes from the CDU that serves the rack alone. Their tags differ from every device
# tag above, so a rack and a device sharing an id still never share a tagPath.
RACK_POINTS: tuple[PointMap, ...] = (
    PointMap("supply_temp_c", "RackLiquidSupplyTemperature", "supplyTemperature", "C"),
    PointMap("return_temp_c", "RackLiquidReturnTemperature", "returnTemperature", "C"),
    PointMap("flow_lpm", "RackLiquidFlow", "flow", "LPM"),
    PointMap("diff_pressure_kpa", "RackLiquidDifferentialPressure", "differentialPressure", "kPa"),
    PointMap("leak", "RackLeakDetect", "leak", states=LEAK),
)
RACK_POWER_TAG = "power"
# No rack or device tag is "heartbeat": this tagPath is nobody else's, even beside a device "dcim".
HEARTBEAT_TAG = "dcim/heartbeat"
HEARTBEAT_S = 10.0


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


def _state_text(states: State) -> list[dict[str, Any]]:
    return [{"value": v, "text": t} for v, t in states]


def _unit_fields(unit: str | None, states: State | None) -> dict[str, Any]:
    if states is not None:
        return {"stateText": _state_text(states)}
    return {"engUnit": unit} if unit is not None else {}


def _rack_meta(point_type: str, rack: str, unit: str | None, states: State | None) -> dict[str, Any]:
    return {"objectType": "Rack", "pointType": point_type, "rackLocationName": rack,
            "rackLocationId": rack, **_unit_fields(unit, states)}


def object_id(spec: DeviceSpec, suffix: str = "") -> str:
    """The objectId of one of a device's DSX objects."""
    return spec.id + suffix


def served_ids(spec: DeviceSpec) -> list[str]:
    """objectIds a device's main object serves: its rack (a PDU, a shelf), or what `serves` names."""
    return [spec.rack] if spec.rack is not None else list(spec.serves)


def _object_meta(spec: DeviceSpec, obj: ObjectMap, pmap: PointMap) -> dict[str, Any]:
    meta: dict[str, Any] = {"objectType": obj.object_type, "pointType": pmap.point_type}
    oid = object_id(spec, obj.id_suffix)
    if obj.mode == Mode.ASSOCIATE:
        meta["associateId"] = object_id(spec, obj.parent)
    else:
        meta["objectName"] = oid
        meta["objectId"] = oid
        meta["servesId"] = ([object_id(spec, obj.feeds)] if obj.feeds is not None
                            else served_ids(spec))
    if pmap.area:
        meta["processArea"] = list(pmap.area)
    if pmap.phase is not None:
        meta["phase"] = pmap.phase
    meta.update(_unit_fields(pmap.unit, pmap.states))
    return meta


def _reading(dev: DeviceStatus | None, point: str, row: str | None = None
             ) -> tuple[float | None, float | None]:
    """A fresh scalar value of a device point (one row of it, or the sum of its rows)."""
    if dev is None:
        return None, None
    value = dev.values.get(point) if dev.fresh else None
    if isinstance(value, Mapping):
        value = value.get(row) if row is not None else float(sum(value.values()))
    elif row is not None and value is not None:
        value = None  # a per-phase point needs per-phase rows
    return (float(value) if value is not None else None), dev.last_poll


def _convert(value: float | None, pmap: PointMap) -> float | None:
    if value is None:
        return None
    if pmap.states is not None:
        return round(value)  # a state point's value is the integer of its stateText
    return value * pmap.scale


def _source(pub: Published, spec: DeviceSpec, pmap: PointMap
            ) -> tuple[float | None, float | None] | None:
    """(value, time) of a mapped point, or None when this device does not have it."""
    snap = pub.snapshot
    if pmap.source == Source.COOLING:
        cooling = snap.cdus.get(spec.id)
        return None if cooling is None else (getattr(cooling, pmap.point), snap.time)
    if pmap.point not in spec.profile.points:
        return None
    return _reading(snap.devices.get(spec.id), pmap.point, pmap.phase)


def _device_points(pub: Published, spec: DeviceSpec, prefix: str) -> Iterator[DsxPoint]:
    for obj in DEVICE_OBJECTS.get(spec.kind, ()):
        for pmap in obj.points:
            if (found := _source(pub, spec, pmap)) is None:
                continue
            raw, when = found
            yield DsxPoint(obj.object_type, pmap.point_type, f"{prefix}/{spec.id}/{pmap.tag}",
                           _object_meta(spec, obj, pmap), _convert(raw, pmap),
                           when if when is not None else pub.snapshot.time)


def _rack_points(pub: Published, prefix: str) -> Iterator[DsxPoint]:
    snap = pub.snapshot
    for rack in snap.racks.values():
        power = rack.power_w / 1000.0 if rack.power_w is not None else None
        yield DsxPoint("Rack", "RackPower", f"{prefix}/{rack.id}/{RACK_POWER_TAG}",
                       _rack_meta("RackPower", rack.id, "kW", None), power, snap.time)
    for spec in pub.site.devices.values():
        if spec.kind != Kind.CDU or len(spec.serves) != 1:
            continue
        rack_id = spec.serves[0]
        dev = snap.devices.get(spec.id)
        for pmap in RACK_POINTS:
            if pmap.point not in spec.profile.points:
                continue
            value, when = _reading(dev, pmap.point)
            yield DsxPoint("Rack", pmap.point_type, f"{prefix}/{rack_id}/{pmap.tag}",
                           _rack_meta(pmap.point_type, rack_id, pmap.unit, pmap.states),
                           _convert(value, pmap), when if when is not None else snap.time)


def heartbeat(pub: Published, prefix: str) -> DsxPoint:
    """dcim's HeartbeatTimestampBms: lets a consumer tell "nothing changed" from "dcim is gone".

    Its value is the snapshot time in ms, floored to HEARTBEAT_S: it changes, and so is sent,
    every 10 s, as the bus asks of a BMS heartbeat. `scope` names the topics it vouches for.
    """
    beat = math.floor(pub.snapshot.time / HEARTBEAT_S) * HEARTBEAT_S
    # Each shard is its own publisher on the bus, so it has a heartbeat of its own.
    part = "" if pub.site.shard is None else f"-{pub.site.shard[0]}-of-{pub.site.shard[1]}"
    scope = f"{ROOT}/+/+/+/{prefix}/#"
    if pub.site.shard is not None:
        scope += f" (shard {pub.site.shard[0]} of {pub.site.shard[1]})"
    meta = {"objectType": "System", "pointType": "HeartbeatTimestampBms",
            "objectName": f"dcim {pub.site.name}{part}", "objectId": f"dcim-{pub.site.name}{part}",
            "scope": scope}
    return DsxPoint("System", "HeartbeatTimestampBms", f"{prefix}/{HEARTBEAT_TAG}{part}", meta,
                    round(beat * 1000), beat)


def dsx_points(pub: Published, tag_prefix: str | None = None) -> Iterator[DsxPoint]:
    """Every DSX point of one snapshot."""
    prefix = tag_prefix or pub.site.name
    yield heartbeat(pub, prefix)
    yield from _rack_points(pub, prefix)
    for spec in pub.site.devices.values():
        yield from _device_points(pub, spec, prefix)
