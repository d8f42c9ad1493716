"""Devices that answer but lie: what the simulator serves in a misbehaviour mode.

Each mode changes a device's canonical values before its profile encodes them, the way agents
in the field get it wrong (collectors/README.md "Checks" says how dcim refuses each):

    zero-power       every power point reads 0 W while its current still flows
    tenfold-power    every power point reads ten times the truth (a scale off by 10)
    tenfold-voltage  voltage rows read ten times the truth (0.1 V units read as V)
    energy-glitch    the energy counter reads 0 until recovered, then its true count again

and, on the wire (the device's encoder rewrites what it serves, dcim/sim/wire.py misreport):

    sentinel         power points answer the profile's "not available" value (UPS-MIB 65535,
                     APC -1, SunSpec -32768); 400 for a profile that declares none
    scale-overflow   decimal digits / scale-factor registers read 400 (10^400, 10^-400);
                     400 for a profile without them
    negative-rows    SNMP power columns with several rows answer -4 and -26 W in two of them
                     (a UPS on bypass); 400 for a device without such a column
"""

from __future__ import annotations

from collections.abc import Mapping

from dcim.sim.canonical import PointValue

VALUE_LIES = ("zero-power", "tenfold-power", "tenfold-voltage", "energy-glitch")
WIRE_LIES = ("sentinel", "scale-overflow", "negative-rows")
LIE_MODES = (*VALUE_LIES, *WIRE_LIES)
POWER_POINTS = frozenset({"power_w", "input_power_w", "output_power_w", "outlet_power_w"})
# mode -> (the points it changes, the factor applied to them)
_FACTORS: dict[str, tuple[frozenset[str], float]] = {
    "zero-power": (POWER_POINTS, 0.0),
    "tenfold-power": (POWER_POINTS, 10.0),
    "tenfold-voltage": (frozenset({"voltage_v"}), 10.0),
    "energy-glitch": (frozenset({"energy_wh"}), 0.0),
}


def _times(value: PointValue, factor: float) -> PointValue:
    if isinstance(value, dict):
        return {k: v * factor for k, v in value.items()}
    return value * factor


def lie(mode: str, values: Mapping[str, PointValue]) -> dict[str, PointValue]:
    """The values a device in `mode` serves instead of `values`."""
    points, factor = _FACTORS[mode]
    return {name: _times(v, factor) if name in points else v for name, v in values.items()}
