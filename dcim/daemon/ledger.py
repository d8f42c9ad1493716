"""The energy ledger: every device's energy state and the site totals, persisted each tick.

Each result is observed at once (compute/energy.py decides what energy it adds); the increments
are added to the totals (and the tenants', compute/tenants.py) and to the 15-minute interval
ledger (intervals.py), and the changed device states written to SQLite (EnergyStore) together
with both once per tick, so a restart neither loses nor double counts energy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from dcim.compute.energy import DeviceEnergy, Increment, add_increments, observe, role_of
from dcim.compute.tenants import add_tenant_energy
from dcim.daemon.energy_store import EnergyStore
from dcim.readings import PollResult
from dcim.site import DeviceSpec, Site


class EnergyLedger:
    """Device energy states and totals; load at start, `flush` every tick, `close` at exit."""

    def __init__(self, store: EnergyStore):
        self._store = store
        # Devices that left the site keep their state: one re-added later continues its count.
        self._devices, self.totals = store.load()
        self._pending: list[Increment] = []
        self._dirty: set[str] = set()

    @classmethod
    def open(cls, path: Path, now: float) -> EnergyLedger:
        """The ledger persisted at path (StateError if the file cannot be used)."""
        return cls(EnergyStore(path, now=now))

    def observe(self, site: Site, device: DeviceSpec, result: PollResult) -> None:
        """Take one result of a device of `site` into account."""
        prev = self._devices.get(device.id, DeviceEnergy())
        state, increment = observe(device, role_of(site, device.id), prev, result)
        if state != prev:
            self._devices[device.id] = state
            self._dirty.add(device.id)
        if increment is not None:
            self._pending.append(increment)
            # The increment covers the time since the device's previous reading.
            self._store.intervals.add(site, increment, prev.last_time, result.time,
                                      device.max_age)

    def flush(self, site: Site, now: float, persist: bool = True) -> None:
        """Add the pending increments to the totals and persist what changed, in one transaction
        (persist=False leaves the writing to a later flush)."""
        intervals = self._store.intervals
        if self._pending:
            self.totals = add_increments(site, self.totals, self._pending)
            self.totals = add_tenant_energy(site, self.totals, self._pending,
                                            intervals.interval_it(now))
            self._pending = []
        intervals.mark(site, now)
        if persist and (self._dirty or intervals.pending):
            self._store.save({d: self._devices[d] for d in self._dirty}, self.totals)
            self._dirty.clear()

    def devices(self) -> Mapping[str, DeviceEnergy]:
        """A copy of every device's energy state (for a Published snapshot)."""
        return dict(self._devices)

    def close(self) -> None:
        """Close the state database."""
        self._store.close()
