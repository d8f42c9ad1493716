"""Canonical points: the vocabulary every device profile maps onto.

A profile may only name points listed here for its device kind. Each point carries its unit
and the physical range outside which a reading is rejected.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """Device kinds dcim understands."""

    PDU = "pdu"
    METER = "meter"
    UPS = "ups"
    CDU = "cdu"
    CHILLER = "chiller"


@dataclass(frozen=True, slots=True)
class PointSpec:
    """One canonical point: unit, kinds that may have it, and its plausible range."""

    name: str
    unit: str
    kinds: frozenset[Kind]
    help: str
    low: float = -math.inf
    high: float = math.inf
    counter: bool = False
    # Power of a rack device is bounded by the rack cap (checked with the cap, not here).
    rack_power: bool = False
    # What the rows of a per-row value are (label name in exports): phase, outlet, ...
    row_label: str = "row"


def _p(
    name: str,
    unit: str,
    kinds: str,
    help: str,
    low: float = -math.inf,
    high: float = math.inf,
    *,
    counter: bool = False,
    rack_power: bool = False,
    row_label: str = "row",
) -> PointSpec:
    return PointSpec(name, unit, frozenset(Kind(k) for k in kinds.split()), help, low, high,
                     counter, rack_power, row_label)


POINTS: dict[str, PointSpec] = {
    p.name: p
    for p in (
        _p("power_w", "W", "pdu meter chiller", "Active power", 0, rack_power=True),
        _p("energy_wh", "Wh", "pdu meter chiller ups", "Cumulative active energy", 0, counter=True),
        _p("apparent_power_va", "VA", "pdu meter ups", "Apparent power", 0),
        _p("power_factor", "1", "pdu meter", "Power factor", 0, 1.0),
        _p("current_a", "A", "pdu meter ups", "RMS current per phase or line", 0, 10_000,
           row_label="phase"),
        _p("voltage_v", "V", "pdu meter ups", "RMS voltage per phase", 0, 100_000,
           row_label="phase"),
        _p("frequency_hz", "Hz", "pdu meter ups", "Line frequency", 40, 70),
        _p("outlet_power_w", "W", "pdu", "Active power per outlet", 0, 100_000,
           row_label="outlet"),
        _p("outlet_current_a", "A", "pdu", "RMS current per outlet", 0, 1_000,
           row_label="outlet"),
        _p("load_state", "1", "pdu", "Load state (0 normal, 1 low, 2 near overload, 3 overload)",
           0, 3),
        _p("input_power_w", "W", "ups", "Input active power", 0),
        _p("output_power_w", "W", "ups", "Output active power", 0),
        _p("load_ratio", "1", "ups", "Output load as a fraction of rated capacity", 0, 5),
        _p("on_battery", "1", "ups", "1 when the output is carried by the battery", 0, 1),
        _p("battery_runtime_s", "s", "ups", "Estimated battery runtime", 0),
        _p("battery_charge_ratio", "1", "ups",
           "Estimated battery charge as a fraction of full charge", 0, 1),
        _p("battery_low", "1", "ups",
           "1 when the UPS reports its battery low or depleted", 0, 1),
        _p("supply_temp_c", "Cel", "cdu", "Secondary (facility-to-rack) supply temperature",
           -20, 120),
        _p("return_temp_c", "Cel", "cdu", "Secondary return temperature", -20, 120),
        _p("flow_lpm", "L/min", "cdu", "Secondary coolant flow", 0, 100_000),
        _p("pump_power_w", "W", "cdu", "Pump electrical power", 0, 1_000_000),
        _p("diff_pressure_kpa", "kPa", "cdu", "Secondary differential pressure", -1_000, 10_000),
        _p("leak", "1", "cdu", "1 when a leak is detected", 0, 1),
        _p("heat_w", "W", "cdu", "Heat removed as reported by the device", 0),
        _p("fault", "1", "cdu chiller", "1 when the unit reports a fault", 0, 1),
        _p("cooling_w", "W", "chiller", "Thermal cooling delivered", 0),
        _p("chw_supply_temp_c", "Cel", "chiller", "Chilled water supply temperature", -20, 60),
        _p("chw_return_temp_c", "Cel", "chiller", "Chilled water return temperature", -20, 60),
    )
}


def check_range(spec: PointSpec, value: float, rack_cap_w: float | None) -> str | None:
    """Return why a scaled value is physically implausible, or None when it is usable."""
    if math.isnan(value) or math.isinf(value):
        return f"not a finite number ({value})"
    if value < spec.low:
        return f"{value:g} {spec.unit} below the physical minimum {spec.low:g}"
    if value > spec.high:
        return f"{value:g} {spec.unit} above the physical maximum {spec.high:g}"
    if spec.rack_power and rack_cap_w is not None and value > 2 * rack_cap_w:
        return f"{value:g} W above twice the rack cap ({2 * rack_cap_w:g} W)"
    return None
