"""Energy ledger: monotonic joule counters built from device energy counters or power.

Device counters reset (APC user reset, Eaton resettable Wh) and wrap (Raritan Unsigned32);
the ledger turns them into per-device increments that never go backwards. Devices without
a counter have their power integrated (trapezoids between fresh readings, never across a
gap longer than max_age). Pure: no I/O and no clock; the daemon persists `DeviceEnergy`.

A counter is checked against power: an increase larger than the device's power could deliver
since the counter last moved (JUMP_MARGIN x the higher power reading, plus two counter steps)
is refused (`jumps`), the counter re-baselined and only the power-integrated estimate
credited. A decrease that is not a wrap is held while the counter stays at (or below) the low
value: if it comes back to its old count it was a glitch (`glitches`: a meter reading 0 for a
few polls), if it counts on from the low value it was a reset. The ledger never jumps.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from dcim.readings import PollResult
from dcim.site import DeviceSpec, Site, power_point

Method = Literal["counter", "integrated"]
Event = Literal["reset", "wrap", "glitch", "jump"]
WH = 3600.0  # joules per watt-hour
# How much more energy than power x time a counter increase may show before it is refused:
# power is sampled at the ends of the interval, the load may peak between them.
JUMP_MARGIN = 2.0


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
    # Counter increases refused as more than power could deliver, and decreases that came back.
    jumps: int = 0
    glitches: int = 0
    # A decrease seen at the last reading, not yet known to be a reset or a glitch.
    suspect_wh: float | None = None
    # When the counter last changed (the span its next increase is checked against).
    changed_time: float | None = None


@dataclass(frozen=True)
class Increment:
    """Energy a device used since its previous reading, and how it was measured."""

    device: str
    joules: float
    method: Method
    event: Event | None = None


def counter_wrap_wh(device: DeviceSpec) -> float | None:
    """The energy (Wh) at which the device's counter rolls over, if its profile says so."""
    point = device.profile.points.get("energy_wh")
    if point is None or point.wrap is None:
        return None
    return point.wrap * point.scale


def counter_step_wh(device: DeviceSpec) -> float:
    """The smallest step the device's counter shows as the profile scales it (0.1 kWh: 100)."""
    point = device.profile.points.get("energy_wh")
    return abs(point.scale) if point is not None else 1.0


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
    if energy is not None:
        return _counter(device, prev, float(energy), power, t)
    if power is None:
        return replace(prev, last_power_w=None, last_time=t), None
    fresh_gap = prev.last_time is not None and 0 < t - prev.last_time <= device.max_age
    state = replace(prev, method="integrated", last_power_w=power, last_time=t, last_wh=None,
                    suspect_wh=None)
    if not fresh_gap or prev.last_power_w is None or prev.method != "integrated":
        return state, None
    assert prev.last_time is not None
    joules = (prev.last_power_w + power) / 2 * (t - prev.last_time)
    return replace(state, total_j=prev.total_j + joules), Increment(
        device.id, joules, "integrated")


def _counter(device: DeviceSpec, prev: DeviceEnergy, now_wh: float, power: float | None,
             t: float) -> tuple[DeviceEnergy, Increment | None]:
    moved = replace(prev, method="counter", last_wh=now_wh, last_power_w=power, last_time=t,
                    suspect_wh=None)
    if prev.last_wh is None or prev.method != "counter" or prev.last_time is None:
        return replace(moved, changed_time=t), None  # first reading: a baseline
    delta_wh = now_wh - prev.last_wh
    if prev.suspect_wh is not None and delta_wh < 0:
        if now_wh <= prev.suspect_wh:
            # Still going down, or stuck at the low value (a meter reading 0 for several
            # polls): keep waiting; only counting on from it makes it a reset.
            return replace(prev, suspect_wh=now_wh), None
        # Counting on from the low value: the counter was reset. What it shows now was used
        # after the reset; power tells us the rest when it is known.
        expected = _expected_wh(prev, power, t)
        wh = now_wh if _credible(device, prev, now_wh, power, t) else 0.0
        return _credit(replace(moved, changed_time=t, resets=prev.resets + 1),
                       device, max(wh, expected or 0.0), "reset")
    if delta_wh < 0:
        wrapped = _wrapped_wh(device, prev, now_wh, power, t)
        if wrapped is not None:
            return _credit(replace(moved, changed_time=t, wraps=prev.wraps + 1), device,
                           wrapped, "wrap")
        # Reset or glitch? Hold the old baseline and decide with the next reading.
        return replace(prev, suspect_wh=now_wh), None
    glitch = prev.suspect_wh is not None
    if glitch:
        moved = replace(moved, glitches=prev.glitches + 1)
    if not _credible(device, prev, delta_wh, power, t):
        # More than the device's power could deliver: never a jump in the ledger. Re-baseline
        # on the new count and credit only what power says.
        state = replace(moved, changed_time=t, jumps=prev.jumps + 1)
        expected = _expected_wh(prev, power, t)
        if expected is None:
            return state, Increment(device.id, 0.0, "integrated", "jump")
        joules = expected * WH
        return replace(state, total_j=prev.total_j + joules), Increment(
            device.id, joules, "integrated", "jump")
    if delta_wh > 0:
        moved = replace(moved, changed_time=t)
    return _credit(moved, device, delta_wh, "glitch" if glitch else None)


def _credit(state: DeviceEnergy, device: DeviceSpec, wh: float,
            event: Event | None) -> tuple[DeviceEnergy, Increment]:
    joules = wh * WH
    return replace(state, total_j=state.total_j + joules), Increment(
        device.id, joules, "counter", event)


def _expected_wh(prev: DeviceEnergy, power: float | None, t: float) -> float | None:
    """Energy power readings say was used since the previous reading (mean of the two ends)."""
    assert prev.last_time is not None
    watts = [p for p in (prev.last_power_w, power) if p is not None]
    if not watts:
        return None
    return sum(watts) / len(watts) * max(t - prev.last_time, 0.0) / 3600.0


def _credible(device: DeviceSpec, prev: DeviceEnergy, increase_wh: float,
              power: float | None, t: float) -> bool:
    """Whether the device's power could have delivered this increase since the counter moved."""
    watts = [p for p in (prev.last_power_w, power) if p is not None]
    if not watts:
        return True  # no power reading to check against
    since = prev.changed_time if prev.changed_time is not None else prev.last_time
    assert since is not None
    hours = max(t - since, 0.0) / 3600.0
    return increase_wh <= JUMP_MARGIN * max(watts) * hours + 2 * counter_step_wh(device) + 1.0


def _wrapped_wh(device: DeviceSpec, prev: DeviceEnergy, now_wh: float, power: float | None,
                t: float) -> float | None:
    """Energy since the previous reading if the decrease is a credible wrap, else None."""
    assert prev.last_wh is not None
    modulus = counter_wrap_wh(device)
    if modulus is None:
        return None
    wrapped = modulus - prev.last_wh + now_wh
    expected = _expected_wh(prev, power, t)
    # A wrap is only credible if the counter was near its top and the step is plausible.
    near_top = prev.last_wh > modulus / 2
    if near_top and (expected is None or wrapped <= 2 * expected + 1.0):
        return wrapped
    return None


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
