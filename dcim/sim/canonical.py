"""Canonical point values of each simulated device, derived from the world state.

This is what the device *measures*, in dcim's units (W, Wh, A, V, Cel, L/min ...), before any
vendor's wire format. Per-phase and per-outlet points are dicts keyed "1", "2", ...
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from dcim.points import Kind
from dcim.sim import signals
from dcim.sim.model import Controls, WorldState
from dcim.sim.topology import SimDevice, SimSite

PointValue = float | dict[str, float]
PHASES = ("1", "2", "3")
OUTLETS = 6
UPS_LINE_V = 230.0
# NVL72-class power shelf: six 5.5 kW rectifiers, about 97 % efficient
SHELF_SUPPLIES = 6
SHELF_SUPPLY_W = 5500.0
SHELF_EFFICIENCY = 0.97


def _phase_fractions(seed: int, key: int) -> list[float]:
    raw = [1.0 + 0.03 * signals.signed(seed, key, i, 7) for i in range(3)]
    total = sum(raw)
    return [r / total for r in raw]


def _outlet_weights(seed: int, key: int) -> list[float]:
    raw = [1.0 + 0.25 * signals.signed(seed, key, i, 8) for i in range(OUTLETS)]
    total = sum(raw)
    return [r / total for r in raw]


def neutral_current_a(currents: Mapping[str, float]) -> float:
    """Neutral current of a wye load: magnitude of the phasor sum of three phase currents."""
    re = im = 0.0
    for i, amps in enumerate(currents.values()):
        angle = -2.0 * math.pi * i / 3.0
        re += amps * math.cos(angle)
        im += amps * math.sin(angle)
    return math.hypot(re, im)


class Canonical:
    """Computes every device's canonical values; per-device constants are derived once."""

    def __init__(self, site: SimSite, seed: int):
        self.site = site
        self.seed = seed
        self._keys = {d.id: signals.key_of(d.id) for d in site.devices}
        self._fractions = {d.id: _phase_fractions(seed, self._keys[d.id]) for d in site.devices}
        self._outlets = {d.id: _outlet_weights(seed, self._keys[d.id])
                         for d in site.devices if d.kind == Kind.PDU}

    def values(self, dev: SimDevice, state: WorldState, controls: Controls,
               energy_wh: float | None) -> dict[str, PointValue]:
        """Every canonical point the device measures at state.t."""
        if dev.kind == Kind.PDU:
            down = (dev.rack, dev.feed) in controls.failed_feeds
            out = self._electrical(dev, state, state.pdu_w[dev.id], down)
            out.update(self._pdu_extras(dev, out))
        elif dev.kind == Kind.SHELF:
            down = (dev.rack, dev.feed) in controls.failed_feeds
            out = self._electrical(dev, state, state.pdu_w[dev.id], down)
            out.update(_supplies(dev.id, state.pdu_w[dev.id], controls))
        elif dev.kind == Kind.METER:
            out = self._electrical(dev, state, state.meter_w.get(dev.id, 0.0), False)
        elif dev.kind == Kind.UPS:
            out = self._ups(dev, state)
        elif dev.kind == Kind.CDU:
            c = state.cdus[dev.id]
            out = {"supply_temp_c": c.supply_c, "return_temp_c": c.return_c,
                   "flow_lpm": c.flow_lpm, "pump_power_w": c.pump_w,
                   "diff_pressure_kpa": c.diff_pressure_kpa, "heat_w": c.heat_w,
                   "leak": 1.0 if c.leak else 0.0, "fault": 0.0}
        else:
            ch = state.chillers[dev.id]
            out = {"power_w": ch.power_w, "cooling_w": ch.cooling_w,
                   "chw_supply_temp_c": ch.chw_supply_c, "chw_return_temp_c": ch.chw_return_c,
                   "fault": 0.0}
        if energy_wh is not None:
            out["energy_wh"] = energy_wh
        return out

    def _electrical(self, dev: SimDevice, state: WorldState, power: float,
                    down: bool) -> dict[str, PointValue]:
        seed, t, k = self.seed, state.t, self._keys[dev.id]
        bus = signals.key_of(f"{dev.rack}/{dev.feed}") if dev.rack else k
        base_v = dev.nominal_v * (1.0 + 0.008 * signals.smooth(seed, bus, t, 300.0, 10))
        volts = {
            ph: 0.0 if down else base_v * (1.0 + 0.002 * signals.signed(seed, k, i, 11)
                                           + 0.001 * signals.smooth(seed, k * 3 + i, t, 15.0, 12))
            for i, ph in enumerate(PHASES)
        }
        pf = 0.985 + 0.008 * signals.smooth(seed, k, t, 240.0, 13)
        amps = {ph: (power * f / (volts[ph] * pf) if volts[ph] > 0 else 0.0)
                for ph, f in zip(PHASES, self._fractions[dev.id], strict=True)}
        hz = self.site.frequency_hz + 0.02 * signals.smooth(seed, 99, t, 30.0)
        return {"power_w": power, "apparent_power_va": power / pf, "power_factor": pf,
                "current_a": amps, "voltage_v": volts, "frequency_hz": hz}

    def _pdu_extras(self, dev: SimDevice, electrical: Mapping[str, PointValue]) -> dict[str, PointValue]:
        power = electrical["power_w"]
        volts = electrical["voltage_v"]
        pf = electrical["power_factor"]
        assert isinstance(power, float) and isinstance(volts, dict) and isinstance(pf, float)
        mean_v = sum(volts.values()) / len(volts)
        weights = self._outlets[dev.id]
        outlet_w = {str(i + 1): power * w for i, w in enumerate(weights)}
        outlet_a = {o: (w / (mean_v * pf) if mean_v > 0 else 0.0) for o, w in outlet_w.items()}
        # 2N: each feed is sized for the whole rack, so its load is judged against the cap
        rack = self.site.racks_by_id[dev.rack] if dev.rack else None
        cap = (rack.cap_kw if rack else self.site.rack_max_kw) * 1000.0
        ratio = power / cap
        state = 1.0 if ratio < 0.05 else 0.0 if ratio < 0.8 else 2.0 if ratio < 1.0 else 3.0
        return {"outlet_power_w": outlet_w, "outlet_current_a": outlet_a, "load_state": state}

    def _ups(self, dev: SimDevice, state: WorldState) -> dict[str, PointValue]:
        u = state.ups[dev.id]
        seed, t, k = self.seed, state.t, self._keys[dev.id]
        pf = 0.99
        volts = {ph: UPS_LINE_V * (1.0 + 0.001 * signals.smooth(seed, k + i, t, 60.0, 14))
                 for i, ph in enumerate(PHASES)}
        amps = {ph: u.output_w / 3.0 / (v * pf) for ph, v in volts.items()}
        runtime = min(7200.0, 900.0 * (0.5 / max(u.load_ratio, 0.05)) ** 1.1)
        # Always on mains (a failed feed is downstream of the UPS): batteries on float charge,
        # full and normal (UPS-MIB batteryNormal).
        return {"input_power_w": u.input_w, "output_power_w": u.output_w,
                "load_ratio": u.load_ratio, "on_battery": 0.0, "battery_runtime_s": runtime,
                "battery_charge_ratio": 1.0, "battery_low": 0.0,
                "voltage_v": volts, "current_a": amps, "apparent_power_va": u.output_w / pf,
                "frequency_hz": self.site.frequency_hz}


def _supplies(shelf: str, input_w: float, controls: Controls) -> dict[str, PointValue]:
    """A power shelf's supplies: the healthy ones share the output evenly, failed ones give 0."""
    ids = [f"PSU{i}" for i in range(1, SHELF_SUPPLIES + 1)]
    healthy = {p: 0.0 if (shelf, p) in controls.failed_supplies else 1.0 for p in ids}
    working = sum(healthy.values())
    output = input_w * SHELF_EFFICIENCY
    return {"supply_healthy": healthy,
            "supply_power_w": {p: output * h / working if working else 0.0
                               for p, h in healthy.items()},
            "supply_capacity_w": {p: SHELF_SUPPLY_W for p in ids}}


def metered_power_w(dev: SimDevice, state: WorldState) -> float | None:
    """The power a device's energy counter integrates (None: the device counts no energy)."""
    if dev.kind in (Kind.PDU, Kind.SHELF):
        return state.pdu_w[dev.id]
    if dev.kind == Kind.METER:
        return state.meter_w.get(dev.id, 0.0)
    if dev.kind == Kind.CHILLER:
        return state.chillers[dev.id].power_w
    if dev.kind == Kind.UPS:
        return state.ups[dev.id].output_w
    return None
