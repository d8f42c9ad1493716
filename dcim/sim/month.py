"""A simulated billing month fed to the interval ledger faster than real time.

The simulator's physics (model.py) is stepped every `step_s` seconds and each device is read
as a poll would read it: its power, and its energy counter as the profile quantizes it (an APC
counts tenths of a kWh). The readings go through the daemon's own EnergyLedger (daemon/ledger.py:
`observe`, the tenant totals, the interval ledger, one transaction per save), so `dcim report`
runs on the result; `truth` is the energy the physics delivered, per bucket.

Counter faults and restarts are injected between steps: `reset_counter`, `glitch` (one
reading of 0), `restart` (the store closed and reopened, the device states read back),
`stopped_until` (dcim down for a while: the counters count on unread).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from pathlib import Path

from dcim.compute.tenants import interval_of, ledger_buckets
from dcim.daemon.ledger import EnergyLedger
from dcim.readings import PollResult
from dcim.sim.canonical import metered_power_w
from dcim.sim.model import Controls, Physics
from dcim.sim.topology import SimSite
from dcim.site import Site


class MonthReplay:
    """One simulated site's devices read every step_s into a state.db."""

    def __init__(self, sim: SimSite, seed: int, site: Site, state_db: Path, step_s: float,
                 start: float):
        self.sim = sim
        self.physics = Physics(sim, seed)
        self.step_s = step_s
        # Readings step_s apart are fresh: the replay stands for a poll every step.
        self.site = dataclasses.replace(site, devices={
            d.id: dataclasses.replace(d, max_age=2 * step_s) for d in site.devices.values()})
        self.path = state_db
        self.devices = [d for d in self.site.devices.values()
                        if ledger_buckets(self.site, d.id) and d.id in sim.devices_by_id
                        and metered_power_w(sim.devices_by_id[d.id], self.physics.state(
                            start, Controls())) is not None]
        self.counter_wh = {d.id: 0.0 for d in self.devices}
        self.truth_j: dict[tuple[int, str], float] = {}
        self.t = start
        self._glitch: set[str] = set()
        self._open(start)

    def _open(self, now: float) -> None:
        self.ledger = EnergyLedger.open(self.path, now)

    def restart(self) -> None:
        """Stop and start again: what is in state.db is all that survives."""
        self.ledger.close()
        self._open(self.t)

    def reset_counter(self, device: str) -> None:
        """The device's energy counter is reset to zero (a user reset)."""
        self.counter_wh[device] = 0.0

    def glitch(self, device: str) -> None:
        """The device's next reading shows its counter as 0, the one after the real count."""
        self._glitch.add(device)

    def stopped_until(self, end: float) -> None:
        """dcim is not running until `end`: the site runs on and counters count, unread."""
        self.ledger.close()
        while self.t + self.step_s <= end + 1e-6:
            self._step(read=False)
        self._open(self.t)

    def run_until(self, end: float) -> None:
        """Step to `end`, saving once per simulated hour (the daemon saves every second)."""
        since_save = 0.0
        while self.t + self.step_s <= end + 1e-6:
            since_save += self.step_s
            self._step(persist=since_save >= 3600)
            since_save = 0.0 if since_save >= 3600 else since_save
        self.ledger.flush(self.site, self.t)

    def _step(self, read: bool = True, persist: bool = False) -> None:
        start, end = self.t, self.t + self.step_s
        state = self.physics.state(end, Controls())
        for device in self.devices:
            power = metered_power_w(self.sim.devices_by_id[device.id], state) or 0.0
            wh = power * self.step_s / 3600.0
            self.counter_wh[device.id] += wh
            for bucket in ledger_buckets(self.site, device.id):
                key = (interval_of(start), bucket)
                self.truth_j[key] = self.truth_j.get(key, 0.0) + wh * 3600.0
            if read:
                self.ledger.observe(self.site, device, PollResult(
                    device=device.id, time=end, duration=0.1,
                    values={"power_w": power, **self._counter(device.id)}))
        self.t = end
        if read:
            # The step's readings belong to the interval it started in (a daemon tick).
            self.ledger.flush(self.site, start, persist=persist)

    def _counter(self, device: str) -> dict[str, float]:
        if "energy_wh" not in self.site.devices[device].profile.points:
            return {}
        if device in self._glitch:
            self._glitch.discard(device)
            return {"energy_wh": 0.0}
        point = self.site.devices[device].profile.points["energy_wh"]
        step = abs(point.scale) or 1.0
        return {"energy_wh": math.floor(self.counter_wh[device] / step) * step}

    def close(self) -> None:
        """Save and close the state file."""
        self.ledger.flush(self.site, self.t)
        self.ledger.close()

    def truth_kwh(self, bucket: str, start: float, end: float) -> float:
        """Energy the physics delivered to a bucket over [start, end) (interval-aligned)."""
        return sum(j for (i, b), j in self.truth_j.items()
                   if b == bucket and start <= i < end) / 3.6e6

    @property
    def totals_by_bucket(self) -> Mapping[str, float]:
        """The live totals summed over methods (what the Prometheus counters show)."""
        out: dict[str, float] = {}
        for (bucket, _), joules in self.ledger.totals.buckets.items():
            out[bucket] = out.get(bucket, 0.0) + joules
        return out
