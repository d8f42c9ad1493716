"""The physics of a simulated hall: a pure function of (site, seed, t, controls) -> WorldState.

Facility power = IT + chiller plant (heat / COP, COP falling as it gets warmer outside) + CDU
pumps + UPS losses (efficiency curve) + a small constant. CDU heat follows
flow x density x cp x delta-T with the same formula and coolant dcim uses.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dcim.compute.cooling import heat_removed_w
from dcim.coolant import COOLANTS, DEFAULT_COOLANT
from dcim.points import Kind
from dcim.sim import signals
from dcim.sim.topology import SimDevice, SimSite

COOLANT = COOLANTS[DEFAULT_COOLANT]
# About 1.5 L/min of PG25 per kW of heat: a 10 K rise across the racks at design flow.
LPM_PER_KW = 1.5
SUPPLY_SETPOINT_C = 35.0
PUMP_SHARE_OF_HEAT = 0.012  # pump electrical power at design flow, as a share of design heat
DESIGN_DP_KPA = 110.0
CHW_SUPPLY_C = 24.0
FEEDS = ("A", "B")
# UPS losses as a share of rated power: no-load + linear + copper (quadratic) terms, which
# gives the usual curve of a double-conversion UPS: ~96 % at 20 % load, ~97.3 % from 50 %.
UPS_LOSS = (0.006, 0.010, 0.012)


@dataclass(frozen=True)
class Controls:
    """What the control API changed: rack load overrides, failed feeds, active leaks, failed
    power-shelf supplies (shelf id, supply id)."""

    load_kw: Mapping[str, float] = field(default_factory=dict)
    failed_feeds: frozenset[tuple[str, str]] = frozenset()
    leaks: frozenset[str] = frozenset()
    failed_supplies: frozenset[tuple[str, str]] = frozenset()


@dataclass(frozen=True)
class CduState:
    """The secondary loop of one CDU."""

    heat_w: float
    supply_c: float
    return_c: float
    flow_lpm: float
    pump_w: float
    diff_pressure_kpa: float
    leak: bool


@dataclass(frozen=True)
class UpsState:
    """One UPS: power in, power out, load against its rating."""

    input_w: float
    output_w: float
    load_ratio: float


@dataclass(frozen=True)
class ChillerState:
    """One chiller: electrical power, heat removed, chilled-water temperatures."""

    power_w: float
    cooling_w: float
    chw_supply_c: float
    chw_return_c: float


@dataclass(frozen=True)
class WorldState:
    """Everything true about the site at one instant."""

    t: float
    outdoor_c: float
    cop: float
    rack_w: Mapping[str, float]
    feed_w: Mapping[str, Mapping[str, float]]
    pdu_w: Mapping[str, float]
    ups: Mapping[str, UpsState]
    cdus: Mapping[str, CduState]
    chillers: Mapping[str, ChillerState]
    meter_w: Mapping[str, float]
    it_w: float
    chiller_plant_w: float
    pump_w: float
    ups_loss_w: float
    misc_w: float
    facility_w: float

    @property
    def pue(self) -> float | None:
        """Facility power over IT power (None when nothing runs)."""
        return self.facility_w / self.it_w if self.it_w > 0 else None


def ups_loss_w(output_w: float, rated_w: float) -> float:
    """Losses of a UPS delivering output_w (efficiency = out / (out + loss))."""
    x = output_w / rated_w
    a, b, c = UPS_LOSS
    return rated_w * (a + b * x + c * x * x)


def chiller_cop(site: SimSite, outdoor_c: float) -> float:
    """Plant COP: falls as outdoor temperature rises (condenser lift), within sane bounds."""
    cop = site.cop_ref - site.cop_per_c * (outdoor_c - site.cop_ref_c)
    return min(9.0, max(2.5, cop))


class Physics:
    """Precomputed indexes of a site; `state(t, controls)` is pure and cheap to call each second."""

    def __init__(self, site: SimSite, seed: int):
        self.site = site
        self.seed = seed
        self._rack_keys = {r.id: signals.key_of(r.id) for r in site.racks}
        self._share_a = {
            r.id: 0.5 + 0.008 * signals.signed(seed, self._rack_keys[r.id], 0, 5) for r in site.racks
        }
        self._pdus: dict[tuple[str, str], list[str]] = {}
        for d in site.devices:
            # a feed's power is split over its PDUs or its power shelves alike
            if d.kind in (Kind.PDU, Kind.SHELF) and d.rack is not None:
                self._pdus.setdefault((d.rack, d.feed or "A"), []).append(d.id)
        self._ups = site.of_kind(Kind.UPS)
        self._cdus = site.of_kind(Kind.CDU)
        self._chillers = site.of_kind(Kind.CHILLER)
        self._meters = [d for d in site.of_kind(Kind.METER) if d.share > 0]
        self._capture = {
            d.id: site.capture_ratio + 0.02 * signals.signed(seed, signals.key_of(d.id), 0, 6)
            for d in self._cdus
        }
        self._cdu_design = {
            d.id: self._capture[d.id] * sum(site.racks_by_id[r].base_kw * 1000 for r in d.serves)
            for d in self._cdus
        }

    def rack_load_w(self, rack_id: str, t: float, controls: Controls) -> float:
        """What a rack draws at time t (the override when the control API set one)."""
        override = controls.load_kw.get(rack_id)
        if override is not None:
            return override * 1000.0
        rack = self.site.racks_by_id[rack_id]
        k = self._rack_keys[rack_id]
        seed = self.seed
        wobble = (0.035 * signals.smooth(seed, k, t, 600.0)
                  + 0.012 * signals.smooth(seed, k, t, 60.0, 1)
                  + 0.003 * signals.smooth(seed, k, t, 9.0, 2))
        kw = rack.base_kw * (1.0 + wobble)
        env, peak = signals.burst(seed, rack.job, t)
        if env > 0.0:
            peak -= 3.0 * signals.uniform(seed, k, 0, 9)
            kw += (peak - kw) * env
        return min(kw, rack.cap_kw * 0.995) * 1000.0

    def _feeds(self, rack_id: str, total: float, controls: Controls) -> dict[str, float]:
        up = [f for f in FEEDS if (rack_id, f) not in controls.failed_feeds]
        if len(up) == 2:
            a = total * self._share_a[rack_id]
            return {"A": a, "B": total - a}
        # 2N: the surviving feed carries the whole rack; with both lost the rack is dark
        return {f: (total if f in up else 0.0) for f in FEEDS}

    def _cdu(self, dev: SimDevice, rack_w: Mapping[str, float], t: float,
             controls: Controls) -> CduState:
        design = self._cdu_design[dev.id]
        heat = self._capture[dev.id] * sum(rack_w[r] for r in dev.serves)
        design_flow = LPM_PER_KW * design / 1000.0
        # variable-speed pumps follow the load only partly, so delta-T moves with it too
        flow = max(0.2 * design_flow, LPM_PER_KW * (0.4 * design + 0.6 * heat) / 1000.0)
        supply = SUPPLY_SETPOINT_C + 0.25 * signals.smooth(self.seed, signals.key_of(dev.id), t, 120.0)
        per_kelvin = heat_removed_w(flow, 1.0, COOLANT)
        ret = supply + heat / per_kelvin
        ratio = flow / design_flow if design_flow > 0 else 0.0
        leak = dev.id in controls.leaks
        return CduState(
            heat_w=heat_removed_w(flow, ret - supply, COOLANT), supply_c=supply, return_c=ret,
            flow_lpm=flow, pump_w=PUMP_SHARE_OF_HEAT * design * (0.15 + 0.85 * ratio ** 3),
            diff_pressure_kpa=DESIGN_DP_KPA * ratio * ratio * (0.9 if leak else 1.0), leak=leak,
        )

    def state(self, t: float, controls: Controls) -> WorldState:
        """The whole site at time t."""
        site = self.site
        rack_w: dict[str, float] = {}
        feed_w: dict[str, dict[str, float]] = {}
        for rack in site.racks:
            load = self.rack_load_w(rack.id, t, controls)
            feeds = self._feeds(rack.id, load, controls)
            feed_w[rack.id] = feeds
            rack_w[rack.id] = sum(feeds.values())
        pdu_w: dict[str, float] = {}
        for (rack_id, feed), ids in self._pdus.items():
            for dev_id in ids:
                pdu_w[dev_id] = feed_w[rack_id].get(feed, 0.0) / len(ids)
        it_w = sum(rack_w.values())

        ups: dict[str, UpsState] = {}
        for dev in self._ups:
            out = sum(feed_w[r].get(f, 0.0) for r, f in dev.carries)
            ups[dev.id] = UpsState(out + ups_loss_w(out, dev.rated_w), out, out / dev.rated_w)
        loss = sum(u.input_w - u.output_w for u in ups.values())

        cdus = {d.id: self._cdu(d, rack_w, t, controls) for d in self._cdus}
        pumps = sum(c.pump_w for c in cdus.values())

        outdoor = signals.outdoor_temp_c(self.seed, t, site.outdoor_mean_c, site.outdoor_swing_c)
        cop = chiller_cop(site, outdoor)
        heat = it_w + loss + pumps + site.misc_w
        plant_w = heat / cop
        chillers: dict[str, ChillerState] = {}
        for dev in self._chillers:
            share = dev.share or 1.0 / len(self._chillers)
            cooling = heat * share
            supply = CHW_SUPPLY_C + 0.2 * signals.smooth(self.seed, signals.key_of(dev.id), t, 90.0)
            lift = 8.0 * cooling / dev.rated_w if dev.rated_w else 6.0
            chillers[dev.id] = ChillerState(plant_w * share, cooling, supply, supply + lift)

        facility = it_w + plant_w + pumps + loss + site.misc_w
        share_sum = sum(d.share for d in self._meters) or 1.0
        meter_w = {d.id: facility * d.share / share_sum for d in self._meters}
        return WorldState(
            t=t, outdoor_c=outdoor, cop=cop, rack_w=rack_w, feed_w=feed_w, pdu_w=pdu_w, ups=ups,
            cdus=cdus, chillers=chillers, meter_w=meter_w, it_w=it_w, chiller_plant_w=plant_w,
            pump_w=pumps, ups_loss_w=loss, misc_w=site.misc_w, facility_w=facility,
        )
