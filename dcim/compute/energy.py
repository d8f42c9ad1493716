"""Energy ledger: monotonic joule counters built from device energy counters or power.

Device counters reset (APC user reset, Eaton resettable Wh) and wrap (Raritan Unsigned32);
the ledger turns them into per-device increments that never go backwards. Devices without
a counter have their power integrated (trapezoids between fresh readings, never across a
gap longer than max_age). Pure: no I/O and no clock; the daemon persists `DeviceEnergy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from dcim.readings import PollResult
from dcim.site import DeviceSpec, Site, power_point

Method = Literal["counter", "integrated"]
WH = 3600.0  # joules per watt-hour


@dataclass(frozen=True)
class DeviceEnergy:
    """What the ledger remembers about one device between polls (and across restarts)."""

    total_j: float = 0.0
    method: Method = "counter"
    last_wh: float | None = None
    last_power_w: float | None = None
    last_time: float | None = None
    resets: int = 0
    wraps: int = 0


@dataclass(frozen=True)
class Increment:
    """Energy a device used since its previous reading, and how it was measured."""

    device: str
    joules: float
    method: Method
    event: Literal["reset", "wrap"] | None = None


def counter_wrap_wh(device: DeviceSpec) -> float | None:
    """The energy (Wh) at which the device's counter rolls over, if its profile says so."""
    point = device.profile.points.get("energy_wh")
    if point is None or point.wrap is None:
        return None
    return point.wrap * point.scale


def _power(device: DeviceSpec, result: PollResult, role: str) -> float | None:
    value = result.values.get(power_point(device.profile, role))
    if value is None:
        return None
    return float(sum(value.values())) if isinstance(value, Mapping) else float(value)


def observe(device: DeviceSpec, role: str, prev: DeviceEnergy,
            result: PollResult) -> tuple[DeviceEnergy, Increment | None]:
    """Advance one device's ledger with a poll; return its new state and the increment."""
    if not result.up:
        return prev, None
    power = _power(device, result, role)
    energy = result.values.get("energy_wh")
    if isinstance(energy, Mapping):
        energy = sum(energy.values())
    t = result.time
    fresh_gap = prev.last_time is not None and 0 < t - prev.last_time <= device.max_age
    if energy is not None:
        state = replace(prev, method="counter", last_wh=float(energy), last_power_w=power,
                        last_time=t)
        if prev.last_wh is None or prev.method != "counter":
            return state, None  # first reading: a baseline, nothing to count yet
        delta_wh = float(energy) - prev.last_wh
        event: Literal["reset", "wrap"] | None = None
        if delta_wh < 0:
            delta_wh, event = _after_decrease(device, prev, float(energy), power, t)
            state = replace(state, resets=state.resets + (event == "reset"),
                            wraps=state.wraps + (event == "wrap"))
        joules = delta_wh * WH
        return replace(state, total_j=prev.total_j + joules), Increment(
            device.id, joules, "counter", event)
    if power is None:
        return replace(prev, last_power_w=None, last_time=t), None
    state = replace(prev, method="integrated", last_power_w=power, last_time=t, last_wh=None)
    if not fresh_gap or prev.last_power_w is None or prev.method != "integrated":
        return state, None
    assert prev.last_time is not None
    joules = (prev.last_power_w + power) / 2 * (t - prev.last_time)
    return replace(state, total_j=prev.total_j + joules), Increment(
        device.id, joules, "integrated")


def _after_decrease(device: DeviceSpec, prev: DeviceEnergy, now_wh: float,
                    power: float | None, t: float) -> tuple[float, Literal["reset", "wrap"]]:
    """Energy since the previous reading when the counter went down: a wrap or a reset."""
    assert prev.last_wh is not None and prev.last_time is not None
    hours = max(t - prev.last_time, 0.0) / 3600.0
    watts = [p for p in (prev.last_power_w, power) if p is not None]
    expected_wh = (sum(watts) / len(watts) * hours) if watts else None
    modulus = counter_wrap_wh(device)
    if modulus is not None:
        wrapped = modulus - prev.last_wh + now_wh
        # A wrap is only credible if the counter was near its top and the step is plausible.
        near_top = prev.last_wh > modulus / 2
        if near_top and (expected_wh is None or wrapped <= 2 * expected_wh + 1.0):
            return wrapped, "wrap"
    # Reset: the counter restarted from zero sometime in the interval. What it shows now was
    # used after the reset; power tells us the rest when it is known.
    return max(now_wh, expected_wh or 0.0), "reset"


@dataclass(frozen=True)
class Totals:
    """Monotonic energy totals (J) per bucket (facility, it, rack:<id>) and method."""

    buckets: Mapping[tuple[str, Method], float]

    def get(self, bucket: str, method: Method) -> float:
        """One bucket's total."""
        return self.buckets.get((bucket, method), 0.0)


def buckets_of(site: Site, device_id: str) -> list[str]:
    """Which energy totals a device's increments add to."""
    out = []
    if site.pue is not None:
        if device_id in site.pue.facility:
            out.append("facility")
        if device_id in site.pue.it:
            out.append("it")
    rack = site.devices[device_id].rack
    if rack is not None:
        out.append(f"rack:{rack}")
    return out


def add_increments(site: Site, totals: Totals, increments: Iterable[Increment]) -> Totals:
    """New totals after adding increments to every bucket their device belongs to."""
    buckets = dict(totals.buckets)
    for inc in increments:
        for bucket in buckets_of(site, inc.device):
            key = (bucket, inc.method)
            buckets[key] = buckets.get(key, 0.0) + inc.joules
    return Totals(buckets)


def role_of(site: Site, device_id: str) -> str:
    """facility or it: decides which power point a UPS contributes."""
    if site.pue is not None and device_id in site.pue.facility:
        return "facility"
    return "it"
