"""Canonical points: the vocabulary every device profile maps onto.

A profile may only name points listed here for its device kind. Each point carries its unit
and the physical range outside which a reading is rejected.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Kind(StrEnum):
    """Device kinds dcim understands."""

    PDU = "pdu"
    # A rack power shelf (NVL72 class: rectifier supplies feeding the rack busbar).
    SHELF = "shelf"
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
    # A narrower range for some device kinds (a PDU's voltage vs a medium-voltage meter's).
    by_kind: Mapping[Kind, tuple[float, float]] = field(default_factory=dict)
    # A state point: the names of its values 0, 1, ... (shown to people instead of numbers)
    states: tuple[str, ...] = ()
    # A fraction of a whole, shown to people as a percentage
    percent: bool = False

    def range_for(self, kind: Kind | None) -> tuple[float, float]:
        """(low, high) for a device of this kind."""
        return self.by_kind.get(kind, (self.low, self.high)) if kind else (self.low, self.high)

    def show(self, value: float) -> str:
        """A scaled value as people read it: a state by its name, a ratio as a percentage."""
        if self.states and float(value).is_integer() and 0 <= value < len(self.states):
            return self.states[int(value)]
        if self.percent:
            return f"{value * 100:g} %"
        unit = {"1": "", "Cel": " °C"}.get(self.unit, f" {self.unit}")  # UCUM to print
        return f"{value:g}{unit}"


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
    by_kind: Mapping[Kind, tuple[float, float]] | None = None,
    states: tuple[str, ...] = (),
    percent: bool = False,
) -> PointSpec:
    return PointSpec(name, unit, frozenset(Kind(k) for k in kinds.split()), help, low, high,
                     counter, rack_power, row_label, dict(by_kind or {}), states, percent)


POINTS: dict[str, PointSpec] = {
    p.name: p
    for p in (
        _p("power_w", "W", "pdu shelf meter chiller", "Active power", 0, 1e9, rack_power=True),
        _p("energy_wh", "Wh", "pdu shelf meter chiller ups", "Cumulative active energy", 0, 1e15,
           counter=True),
        _p("apparent_power_va", "VA", "pdu meter ups", "Apparent power", 0, 1e9),
        _p("power_factor", "1", "pdu meter", "Power factor", 0, 1.0),
        _p("current_a", "A", "pdu shelf meter ups", "RMS current per phase or line", 0, 10_000,
           row_label="phase", by_kind={Kind.PDU: (0, 1_000), Kind.SHELF: (0, 1_000)}),
        # Low-voltage gear tops out at 600 V line-to-line (+10 %); meters may sit on medium
        # voltage. A value ten times too high (2300 V at a 230 V UPS) is out of range.
        _p("voltage_v", "V", "pdu shelf meter ups", "RMS voltage per phase", 0, 100_000,
           row_label="phase", by_kind={Kind.PDU: (0, 700), Kind.SHELF: (0, 700),
                                        Kind.UPS: (0, 700)}),
        _p("frequency_hz", "Hz", "pdu shelf meter ups", "Line frequency", 40, 70),
        _p("outlet_power_w", "W", "pdu", "Active power per outlet", 0, 50_000,
           row_label="outlet"),
        _p("outlet_current_a", "A", "pdu", "RMS current per outlet", 0, 200,
           row_label="outlet"),
        _p("load_state", "1", "pdu", "Load state (0 normal, 1 low, 2 near overload, 3 overload)",
           0, 3, states=("normal", "low", "near overload", "overload")),
        _p("supply_power_w", "W", "shelf", "Output power per power supply", 0, 100_000,
           row_label="supply"),
        _p("supply_capacity_w", "W", "shelf", "Rated output capacity per power supply", 0,
           100_000, row_label="supply"),
        _p("supply_healthy", "1", "shelf",
           "Per installed power supply: 1 when enabled and healthy, 0 when failed or offline",
           0, 1, row_label="supply"),
        # The largest UPS systems are a few MW; 0xFFFF-style sentinels land far above.
        _p("input_power_w", "W", "ups", "Input active power", 0, 10_000_000),
        _p("output_power_w", "W", "ups", "Output active power", 0, 10_000_000),
        # A UPS carries at most ~150 % of its rating, and only for seconds.
        _p("load_ratio", "1", "ups", "Output load as a fraction of rated capacity", 0, 3,
           percent=True),
        _p("on_battery", "1", "ups", "1 when the output is carried by the battery", 0, 1,
           states=("not on battery", "on battery")),
        # A week: long-runtime strings at light load report a day or so; 65535 min is 45 days.
        _p("battery_runtime_s", "s", "ups", "Estimated battery runtime", 0, 7 * 86_400),
        _p("battery_charge_ratio", "1", "ups",
           "Estimated battery charge as a fraction of full charge", 0, 1, percent=True),
        _p("battery_low", "1", "ups",
           "1 when the UPS reports its battery low or depleted", 0, 1,
           states=("battery ok", "battery low")),
        _p("supply_temp_c", "Cel", "cdu", "Secondary (facility-to-rack) supply temperature",
           -20, 120),
        _p("return_temp_c", "Cel", "cdu", "Secondary return temperature", -20, 120),
        _p("flow_lpm", "L/min", "cdu", "Secondary coolant flow", 0, 100_000),
        _p("pump_power_w", "W", "cdu", "Pump electrical power", 0, 1_000_000),
        _p("diff_pressure_kpa", "kPa", "cdu", "Secondary differential pressure", -1_000, 10_000),
        _p("leak", "1", "cdu", "1 when a leak is detected", 0, 1, states=("no leak", "leak")),
        _p("heat_w", "W", "cdu", "Heat removed as reported by the device", 0, 1e8),
        _p("fault", "1", "cdu chiller", "1 when the unit reports a fault", 0, 1,
           states=("no fault", "fault")),
        _p("cooling_w", "W", "chiller", "Thermal cooling delivered", 0, 1e8),
        _p("chw_supply_temp_c", "Cel", "chiller", "Chilled water supply temperature", -20, 60),
        _p("chw_return_temp_c", "Cel", "chiller", "Chilled water return temperature", -20, 60),
    )
}

# What a device may say as a power-of-ten exponent (SunSpec *_SF) or a number of decimal
# digits (Raritan, Eaton). Real devices use -3..3; anything outside makes the point unavailable
# rather than 10^-400 = 0 W or 10^400 = OverflowError.
SCALE_EXPONENT_RANGE = (-6, 9)


def _for(spec: PointSpec, kind: Kind | None) -> str:
    return f" for a {kind}" if kind in spec.by_kind else ""


def check_range(spec: PointSpec, value: float, rack_cap_w: float | None,
                kind: Kind | None = None) -> str | None:
    """Return why a scaled value is physically impossible, or None when it is usable."""
    if math.isnan(value) or math.isinf(value):
        return f"not a finite number ({value})"
    low, high = spec.range_for(kind)
    if value < low:
        return f"{value:g} {spec.unit} below the physical minimum {low:g}{_for(spec, kind)}"
    if value > high:
        return f"{value:g} {spec.unit} above the physical maximum {high:g}{_for(spec, kind)}"
    if spec.rack_power and rack_cap_w is not None and value > 2 * rack_cap_w:
        return f"{value:g} W above twice the rack cap ({2 * rack_cap_w:g} W)"
    return None


# --- Plausibility across the points of one device -----------------------------------------------
#
# Each value can be in range and the set still be impossible: 0 W while 14.5 A flows, more
# active power than the phases' volts x amps can carry, a UPS drawing less than it delivers.
# These relations are data: decode applies every rule of the device's kind whose points were
# all read whole, and a violated rule refuses the points it names in `refuses`.


@dataclass(frozen=True, slots=True)
class PowerWithinVa:
    """Active power against the apparent power of the current and voltage rows (sum of V x I).

    Active power may not exceed it (plus a tolerance for readings taken moments apart), and may
    not be (nearly) zero while substantial current flows: no real load has a power factor below
    `min_power_factor`. Either way power and current are refused (one of them lies: a power
    register stuck at 0, a current in 0.01 A read as 0.1 A); voltage has its own range by kind.
    """

    power: str
    current: str = "current_a"
    voltage: str = "voltage_v"
    tolerance: float = 0.15
    slack_w: float = 50.0
    min_power_factor: float = 0.2
    min_va: float = 500.0
    # Skip the rule while this point reads 1 (a UPS's input on battery).
    unless: str | None = None
    # Whether a violation refuses the current too (not when the power is another side's).
    with_current: bool = True

    @property
    def refuses(self) -> tuple[str, ...]:
        """The points a violation makes unavailable."""
        return (self.power, self.current) if self.with_current else (self.power,)


@dataclass(frozen=True, slots=True)
class AtLeast:
    """`larger` is never below `smaller` (less a tolerance), unless point `unless` reads 1.

    Only `larger` is refused: `smaller` is the side other rules cross-check (a UPS output and a
    PDU's active power against volts x amps), so it is the credible one.
    """

    larger: str
    smaller: str
    unless: str | None = None
    tolerance: float = 0.05
    slack: float = 100.0
    why: str = ""

    @property
    def refuses(self) -> tuple[str, ...]:
        """The points a violation makes unavailable."""
        return (self.larger,)


Rule = PowerWithinVa | AtLeast

RULES: dict[Kind, tuple[Rule, ...]] = {
    Kind.PDU: (PowerWithinVa("power_w"),
               AtLeast("apparent_power_va", "power_w", why="active power above apparent power")),
    Kind.METER: (PowerWithinVa("power_w"),
                 AtLeast("apparent_power_va", "power_w", why="active power above apparent power")),
    # UPS-MIB's per-line voltage and current are the output side (see collectors/snmp/ups-mib).
    Kind.UPS: (PowerWithinVa("output_power_w"),
               # The input carries the output, the losses and battery charging: against the
               # output's volts x amps it may be up to 50 % + 1 kW higher, never near zero.
               PowerWithinVa("input_power_w", tolerance=0.5, slack_w=1000.0,
                             unless="on_battery", with_current=False),
               AtLeast("input_power_w", "output_power_w", unless="on_battery",
                       why="input below output while not on battery")),
}
