"""Simulator-only hints per profile: what the profile YAML cannot say about a device.

The wire encoding itself is derived from the profile (`wire`); these hints only add what a
real agent decides on its own: table row indexes, SNMP types, decimal digits, which raw code
stands for a canonical value, counter quirks and fixed registers. A profile without hints is
still simulated, with plain defaults (rows "1", "2" ...; Integer32).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dcim.sim import signals
from dcim.sim.canonical import OUTLETS
from dcim.sim.topology import SimDevice


@dataclass(frozen=True)
class VendorHints:
    """How one vendor's agent lays out and types what the profile reads."""

    # walked column OID -> row keys (the index before the profile's index_suffix), in the
    # order of the model's rows (phases 1-3, outlets 1-n)
    rows: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # column or scalar OID -> SNMP type: integer | gauge | counter32 | counter64 | string
    types: Mapping[str, str] = field(default_factory=dict)
    default_type: str = "integer"
    # point -> decimal digits served in the profile's decimals column
    decimals: Mapping[str, int] = field(default_factory=dict)
    # point -> canonical value -> raw code (when a map has several codes for one value)
    map_raw: Mapping[str, Mapping[float, int]] = field(default_factory=dict)
    # column whose rows after the three phases carry the neutral current (wye inputs)
    neutral_column: str | None = None
    # points that half the devices (older firmware) serve only through the profile's first
    # fallback, so the fallback path is exercised too
    firmware_without: frozenset[str] = frozenset()
    # raw value at which the energy counter wraps: such devices start near it, so the wrap
    # happens while the simulator runs
    energy_wrap: float | None = None
    # fixed Modbus holding registers (model markers and headers)
    registers: Mapping[int, int] = field(default_factory=dict)


def _seq(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}{i}" for i in range(1, n + 1))


_APC = "1.3.6.1.4.1.318.1.1.26"
_RARITAN = "1.3.6.1.4.1.13742.6"
_EATON = "1.3.6.1.4.1.534.6.6.7"
_ST = "1.3.6.1.4.1.1718.4.1"
_VERTIV = "1.3.6.1.4.1.21239.5.2.3"
_UPS = "1.3.6.1.2.1.33.1"

HINTS: dict[str, VendorHints] = {
    # one PDU per NPS group: device table row 1, phase rows 1-3, outlets 1-n; all INTEGER
    "apc-rpdu2": VendorHints(
        rows={f"{_APC}.9.4.3.1.7": _seq("", OUTLETS), f"{_APC}.9.4.3.1.6": _seq("", OUTLETS)},
    ),
    # sensor rows <pdu>.<inlet>[.<pole>].<type>, Unsigned32 values with decimal digits
    "raritan-px": VendorHints(
        rows={
            f"{_RARITAN}.5.2.3.1.4": ("1.1",),
            f"{_RARITAN}.5.2.4.1.4": _seq("1.1.", 3),
            f"{_RARITAN}.5.4.3.1.4": _seq("1.", OUTLETS),
        },
        types={f"{_RARITAN}.5.2.3.1.4": "gauge", f"{_RARITAN}.5.2.4.1.4": "gauge",
               f"{_RARITAN}.5.4.3.1.4": "gauge"},
        decimals={"current_a": 3, "outlet_current_a": 3, "voltage_v": 1, "frequency_hz": 1},
        energy_wrap=2.0 ** 32,
    ),
    # strapped unit 0 (master), input 1; the current table ends with the neutral row
    "eaton-epdu": VendorHints(
        rows={
            f"{_EATON}.3.5.1.4": ("0.1",), f"{_EATON}.3.5.1.3": ("0.1",),
            f"{_EATON}.3.5.1.5": ("0.1",), f"{_EATON}.3.1.1.3": ("0.1",),
            f"{_EATON}.3.3.1.4": _seq("0.1.", 4), f"{_EATON}.3.2.1.3": _seq("0.1.", 3),
            f"{_EATON}.6.5.1.3": _seq("0.", OUTLETS), f"{_EATON}.6.4.1.3": _seq("0.", OUTLETS),
        },
        types={f"{_EATON}.3.5.1.5": "gauge", f"{_EATON}.3.3.1.4": "gauge",
               f"{_EATON}.3.2.1.3": "gauge", f"{_EATON}.6.4.1.3": "gauge"},
        neutral_column=f"{_EATON}.3.3.1.4",
    ),
    # unit 1 (master), cord 1; phases and outlets below the cord
    "servertech-sentry4": VendorHints(
        rows={
            f"{_ST}.3.3.1.3": ("1.1",), f"{_ST}.3.3.1.5": ("1.1",), f"{_ST}.3.3.1.10": ("1.1",),
            f"{_ST}.3.3.1.11": ("1.1",), f"{_ST}.5.3.1.6": _seq("1.1.", 3),
            f"{_ST}.5.3.1.3": _seq("1.1.", 3), f"{_ST}.8.3.1.7": _seq("1.1.", OUTLETS),
            f"{_ST}.8.3.1.3": _seq("1.1.", OUTLETS),
        },
    ),
    # some V5 firmware leaves the pduMainTable totals empty: dcim must sum the phases
    "vertiv-v5": VendorHints(
        rows={f"{_VERTIV}.2.1.12": _seq("", 3), f"{_VERTIV}.2.1.13": _seq("", 3),
              f"{_VERTIV}.2.1.15": _seq("", 3)},
        default_type="gauge",
        firmware_without=frozenset({"power_w", "apparent_power_va", "energy_wh"}),
    ),
    # three input and output lines; upsOutputSource normal(3); upsBatteryStatus
    # batteryNormal(2) or batteryLow(3) (depleted(4) also decodes as low)
    "ups-mib": VendorHints(
        rows={f"{_UPS}.3.3.1.5": _seq("", 3), f"{_UPS}.4.4.1.4": _seq("", 3),
              f"{_UPS}.4.4.1.5": _seq("", 3)},
        map_raw={"on_battery": {0.0: 3, 1.0: 5}, "battery_low": {0.0: 2, 1.0: 3}},
    ),
    # SunSpec: "SunS" marker, common model 1 header, model 203 header, end marker
    "sunspec-meter": VendorHints(
        registers={40000: 0x5375, 40001: 0x6E53, 40002: 1, 40003: 66, 40070: 203, 40071: 105,
                   40177: 0xFFFF, 40178: 0},
    ),
}

DEFAULT_HINTS = VendorHints()


def hints_for(profile: str) -> VendorHints:
    """The hints of a profile (defaults for a profile the simulator has no hints for)."""
    return HINTS.get(profile, DEFAULT_HINTS)


def uses_fallback_firmware(device_id: str) -> bool:
    """Whether this device runs the older firmware of its vendor (every other device)."""
    return signals.key_of(device_id) % 2 == 1


def initial_energy_wh(dev: SimDevice, seed: int, rack_share_w: float) -> float:
    """Where a device's energy counter starts: years of service, or just before its wrap."""
    hints = hints_for(dev.profile)
    u = signals.uniform(seed, signals.key_of(dev.id), 0, 21)
    if hints.energy_wrap is not None and rack_share_w > 0:
        # wraps 20-80 minutes after start-up at the device's usual load
        return hints.energy_wrap - rack_share_w * (1200.0 + 3600.0 * u) / 3600.0
    years = 0.5 + 3.0 * u
    return max(rack_share_w, 1000.0) * 8760.0 * years * 0.9
