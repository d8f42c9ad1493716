"""The running world: the state that changes (controls, energy counters, device faults).

One `World` per process. Each second `advance` integrates energy and recomputes the state;
control actions mutate it and recompute at once, so /truth and the served values always come
from the same WorldState. Device images (MIBs, registers) are encoded lazily, once per state.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from dcim.points import Kind
from dcim.profile import Profile, ProfileRegistry
from dcim.sim import vendors
from dcim.sim.canonical import SHELF_SUPPLIES, Canonical, PointValue, metered_power_w
from dcim.sim.lies import LIE_MODES, VALUE_LIES, WIRE_LIES, lie
from dcim.sim.model import FEEDS, Controls, Physics, WorldState
from dcim.sim.redfish import REDFISH_MODES, RedfishImage
from dcim.sim.topology import SimDevice, SimSite
from dcim.sim.wire import Encoder, ModbusEncoder, ModbusImage, SnmpEncoder, SnmpImage, encoder_for

FAIL_MODES = ("timeout", "garbage", "exception", "slow", *REDFISH_MODES, *LIE_MODES)
MAX_CATCH_UP_S = 120  # after a longer stall, integrate the gap in one step


class ActionError(Exception):
    """A control action that cannot be applied; `status` is the HTTP status to answer."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class _Served:
    version: int
    values: dict[str, PointValue]
    image: SnmpImage | ModbusImage | RedfishImage


class World:
    """A simulated site in motion: state, controls, energy counters, device fault modes."""

    def __init__(self, site: SimSite, seed: int, registry: ProfileRegistry, start: float,
                 frozen: bool = False):
        self.site = site
        self.seed = seed
        self.frozen = frozen
        self.started = start
        self.physics = Physics(site, seed)
        self.canonical = Canonical(site, seed)
        self.controls = Controls()
        self.modes: dict[str, str] = {}
        self.profiles: dict[str, Profile] = {d.id: registry[d.profile] for d in site.devices}
        self.encoders: dict[str, Encoder] = {
            d.id: encoder_for(self.profiles[d.id], vendors.hints_for(d.profile), d.id,
                              vendors.uses_fallback_firmware(d.id), d.unit)
            for d in site.devices
        }
        self.t = math.floor(start)
        self.state = self.physics.state(self.t, self.controls)
        self.version = 0
        self.energy: dict[str, float] = {}
        for dev in site.devices:
            power = metered_power_w(dev, self.state)
            if power is not None:
                self.energy[dev.id] = vendors.initial_energy_wh(dev, seed, power)
        self._served: dict[str, _Served] = {}

    # --- time ---------------------------------------------------------------------------

    def advance(self, now: float) -> bool:
        """Step to the last whole second before `now`, integrating energy; True if it moved."""
        target = math.floor(now)
        if self.frozen or target <= self.t:
            return False
        state = self.state
        if target - self.t > MAX_CATCH_UP_S:
            state = self.physics.state(target, self.controls)
            self._integrate(state, float(target - self.t))
        else:
            for k in range(self.t + 1, target + 1):
                state = self.physics.state(k, self.controls)
                self._integrate(state, 1.0)
        self.t = target
        self._set(state)
        return True

    def _integrate(self, state: WorldState, seconds: float) -> None:
        for dev_id in self.energy:
            power = metered_power_w(self.site.devices_by_id[dev_id], state)
            self.energy[dev_id] += (power or 0.0) * seconds / 3600.0

    def _set(self, state: WorldState) -> None:
        self.state = state
        self.version += 1

    def _recompute(self) -> None:
        self._set(self.physics.state(self.t, self.controls))

    # --- what devices serve -------------------------------------------------------------

    def _current(self, dev_id: str) -> _Served:
        served = self._served.get(dev_id)
        if served is None or served.version != self.version:
            dev = self.site.devices_by_id[dev_id]
            values = self.canonical.values(dev, self.state, self.controls, self.energy.get(dev_id))
            mode = self.modes.get(dev_id)
            if mode in VALUE_LIES:
                values = lie(mode, values)
            encoder = self.encoders[dev_id]
            image: SnmpImage | ModbusImage | RedfishImage
            if isinstance(encoder, SnmpEncoder):
                image = encoder.encode(values, uptime_s=self.t - self.started + 86400.0)
            else:
                image = encoder.encode(values)
            if mode in WIRE_LIES and isinstance(encoder, SnmpEncoder | ModbusEncoder):
                encoder.misreport(mode, image)  # type: ignore[arg-type]
            served = self._served[dev_id] = _Served(self.version, values, image)
        return served

    def image(self, dev_id: str) -> SnmpImage | ModbusImage | RedfishImage:
        """The wire image the device serves now."""
        return self._current(dev_id).image

    def device_view(self, dev_id: str) -> dict[str, Any]:
        """A device's served values: canonical (model) and as dcim should decode them."""
        served = self._current(dev_id)
        decoded = self.encoders[dev_id].decode(served.image)  # type: ignore[arg-type]
        dev = self.site.devices_by_id[dev_id]
        return {
            "id": dev_id, "profile": dev.profile, "kind": str(dev.kind), "time": self.t,
            "mode": self.modes.get(dev_id), "points": dict(decoded.values),
            "errors": dict(decoded.errors), "model": served.values,
        }

    # --- control actions ----------------------------------------------------------------

    def apply(self, action: dict[str, Any]) -> dict[str, Any]:
        """Apply one control action (already parsed JSON); raise ActionError when it is bad."""
        kind = action.get("action")
        handler = _ACTIONS.get(str(kind))
        if handler is None:
            raise ActionError(404, f"unknown action {kind!r}")
        return handler(self, action)

    def _rack(self, rack_id: Any) -> str:
        if rack_id not in self.site.racks_by_id:
            raise ActionError(404, f"unknown rack '{rack_id}'")
        return str(rack_id)

    def _device(self, dev_id: Any, kind: Kind | None = None) -> SimDevice:
        dev = self.site.devices_by_id.get(str(dev_id))
        if dev is None:
            raise ActionError(404, f"unknown device '{dev_id}'")
        if kind is not None and dev.kind != kind:
            raise ActionError(404, f"'{dev_id}' is a {dev.kind}, not a {kind}")
        return dev

    def _set_load(self, action: dict[str, Any]) -> dict[str, Any]:
        rack_id = self._rack(action.get("rack"))
        kw = action.get("kw")
        loads = dict(self.controls.load_kw)
        if kw is None:
            loads.pop(rack_id, None)
        else:
            if isinstance(kw, bool) or not isinstance(kw, int | float) or not math.isfinite(kw):
                raise ActionError(400, "'kw' must be a number (or null to follow the model)")
            cap = self.site.racks_by_id[rack_id].cap_kw
            if kw < 0:
                raise ActionError(400, f"'kw' must not be negative (got {kw:g})")
            if kw > 2 * cap:
                raise ActionError(400, f"'kw' {kw:g} is above twice the rack cap ({2 * cap:g} kW)")
            loads[rack_id] = float(kw)
        self.controls = replace(self.controls, load_kw=loads)
        self._recompute()
        return {"rack": rack_id, "kw": kw, "w": self.state.rack_w[rack_id]}

    def _fail_device(self, action: dict[str, Any]) -> dict[str, Any]:
        dev = self._device(action.get("device"))
        mode = action.get("mode")
        if mode not in FAIL_MODES:
            raise ActionError(400, f"'mode' must be one of {', '.join(FAIL_MODES)} (got {mode!r})")
        if mode in REDFISH_MODES and self.profiles[dev.id].protocol != "redfish":
            raise ActionError(400, f"mode {mode!r} is an HTTP fault; '{dev.id}' is not on Redfish")
        if mode in WIRE_LIES:
            encoder = self.encoders[dev.id]
            probe = self.image(dev.id)
            if not isinstance(encoder, SnmpEncoder | ModbusEncoder) or not encoder.misreport(
                    str(mode), dict(probe)):  # type: ignore[arg-type]
                raise ActionError(400, f"profile {dev.profile} of '{dev.id}' has nothing for "
                                  f"mode {mode!r} (no sentinel / no scale factor or decimals)")
        self.modes[dev.id] = str(mode)
        self.version += 1  # a lie changes what the device serves
        return {"device": dev.id, "mode": mode}

    def _recover_device(self, action: dict[str, Any]) -> dict[str, Any]:
        dev = self._device(action.get("device"))
        self.modes.pop(dev.id, None)
        self.version += 1
        return {"device": dev.id, "mode": None}

    def _feed(self, action: dict[str, Any], failed: bool) -> dict[str, Any]:
        rack_id = self._rack(action.get("rack"))
        feed = str(action.get("feed", "")).upper()
        if feed not in FEEDS:
            raise ActionError(404, f"unknown feed '{action.get('feed')}'; known: {', '.join(FEEDS)}")
        feeds = set(self.controls.failed_feeds)
        (feeds.add if failed else feeds.discard)((rack_id, feed))
        self.controls = replace(self.controls, failed_feeds=frozenset(feeds))
        self._recompute()
        return {"rack": rack_id, "feed": feed, "failed": failed,
                "feeds": dict(self.state.feed_w[rack_id])}

    def _leak(self, action: dict[str, Any]) -> dict[str, Any]:
        dev = self._device(action.get("cdu"), Kind.CDU)
        active = action.get("active", True)
        if not isinstance(active, bool):
            raise ActionError(400, "'active' must be true or false")
        leaks = set(self.controls.leaks)
        (leaks.add if active else leaks.discard)(dev.id)
        self.controls = replace(self.controls, leaks=frozenset(leaks))
        self._recompute()
        return {"cdu": dev.id, "leak": active}

    def _supply(self, action: dict[str, Any], failed: bool) -> dict[str, Any]:
        dev = self._device(action.get("device"), Kind.SHELF)
        supply = str(action.get("supply", ""))
        known = [f"PSU{i}" for i in range(1, SHELF_SUPPLIES + 1)]
        if supply not in known:
            raise ActionError(404, f"unknown supply {action.get('supply')!r}; known: {', '.join(known)}")
        supplies = set(self.controls.failed_supplies)
        (supplies.add if failed else supplies.discard)((dev.id, supply))
        self.controls = replace(self.controls, failed_supplies=frozenset(supplies))
        self._recompute()
        return {"device": dev.id, "supply": supply, "failed": failed}

    def _reset_energy(self, action: dict[str, Any]) -> dict[str, Any]:
        dev = self._device(action.get("device"))
        profile = self.profiles[dev.id]
        if dev.id not in self.energy or "energy_wh" not in profile.points:
            raise ActionError(409, f"'{dev.id}' ({dev.profile}) has no energy counter to reset")
        self.energy[dev.id] = 0.0
        self.version += 1
        return {"device": dev.id, "energy_wh": 0.0}

    # --- truth --------------------------------------------------------------------------

    def truth(self) -> dict[str, Any]:
        """The ground truth of the state being served (the /truth document)."""
        st = self.state
        return {
            "pue": st.pue,
            "facility_w": st.facility_w,
            "it_w": st.it_w,
            "racks": dict(st.rack_w),
            "cdus": {cid: {"heat_w": c.heat_w, "supply_c": c.supply_c, "return_c": c.return_c,
                           "flow_lpm": c.flow_lpm, "leak": c.leak} for cid, c in st.cdus.items()},
            "devices": [d.id for d in self.site.devices],
            "time": st.t,
            "site": self.site.name,
            "feeds": {r: dict(f) for r, f in st.feed_w.items()},
            "breakdown": {"cooling_w": st.chiller_plant_w + st.pump_w, "chillers_w":
                          st.chiller_plant_w, "pumps_w": st.pump_w, "ups_loss_w": st.ups_loss_w,
                          "misc_w": st.misc_w, "outdoor_c": st.outdoor_c, "cop": st.cop},
            "meters": dict(st.meter_w),
            "failed_devices": dict(self.modes),
            "failed_feeds": sorted(f"{r}/{f}" for r, f in self.controls.failed_feeds),
            "load_overrides_kw": dict(self.controls.load_kw),
            "frozen": self.frozen,
        }


_ACTIONS: dict[str, Callable[[World, dict[str, Any]], dict[str, Any]]] = {
    "load": World._set_load,
    "fail": World._fail_device,
    "recover": World._recover_device,
    "feed-fail": lambda w, a: w._feed(a, True),
    "feed-recover": lambda w, a: w._feed(a, False),
    "leak": World._leak,
    "supply-fail": lambda w, a: w._supply(a, True),
    "supply-recover": lambda w, a: w._supply(a, False),
    "reset-energy": World._reset_energy,
}
