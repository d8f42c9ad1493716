"""The Snapshot: everything computed from one instant of the site, read by every sink."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from dcim.compute.energy import DeviceEnergy, Totals
from dcim.health import Health
from dcim.readings import PointValue
from dcim.reasons import ErrorKind, PointError
from dcim.site import Site

PueStatus = Literal["ok", "degraded", "unavailable"]


@dataclass(frozen=True)
class DeviceStatus:
    """A device as the sinks see it: up or not, and its fresh values."""

    id: str
    profile: str
    kind: str
    up: bool
    fresh: bool
    values: Mapping[str, PointValue]
    errors: Mapping[str, PointError]
    last_poll: float | None
    last_success: float | None
    poll_duration: float | None
    error: str | None = None
    error_kind: ErrorKind | None = None
    rack: str | None = None
    feed: str | None = None


@dataclass(frozen=True)
class RackPower:
    """Power of one rack against its cap; totals are None unless every input is fresh."""

    id: str
    cap_w: float
    feed_capacity_w: float
    feeds: Mapping[str, float | None]
    power_w: float | None
    utilization: float | None
    failover_risk: bool | None
    missing: tuple[str, ...]
    hall: str | None = None
    row: str | None = None
    tenant: str | None = None


@dataclass(frozen=True)
class TenantPower:
    """A tenant's live power against its contract; None unless every rack it leases is
    complete (a tenant with a rack polled by another shard is always withheld here)."""

    id: str
    contract_w: float
    power_w: float | None
    utilization: float | None
    racks: int
    missing_racks: tuple[str, ...]


@dataclass(frozen=True)
class UnassignedPower:
    """The racks no tenant leases; their power None unless every one is complete."""

    racks: tuple[str, ...]
    power_w: float | None
    missing_racks: tuple[str, ...]


@dataclass(frozen=True)
class PueResult:
    """Live PUE, or why it is withheld."""

    value: float | None
    status: PueStatus
    coverage: float
    facility_w: float | None
    it_w: float | None
    missing: tuple[str, ...]
    target: float | None
    reason: str | None = None


@dataclass(frozen=True)
class Overhead:
    """Where facility power goes besides IT (None where meters do not allow a split)."""

    cooling_w: float | None
    ups_loss_w: float | None
    other_w: float | None


@dataclass(frozen=True)
class CduCooling:
    """Heat removed by one CDU's secondary loop."""

    id: str
    supply_c: float | None
    return_c: float | None
    flow_lpm: float | None
    delta_t: float | None
    heat_w: float | None
    heat_source: Literal["computed", "reported"] | None
    capture_ratio: float | None
    leak: bool | None
    racks: tuple[str, ...]


@dataclass(frozen=True)
class ShelfRedundancy:
    """A power shelf's supplies: installed, healthy, and the capacity left after one more
    failure (None where the inputs are missing)."""

    id: str
    rack: str | None = None
    installed: int | None = None
    healthy: int | None = None
    capacity_w: float | None = None
    n1_capacity_w: float | None = None
    load_w: float | None = None
    carries_one_more_failure: bool | None = None


@dataclass(frozen=True)
class Snapshot:
    """One consistent picture of the site at `time`."""

    site: str
    time: float
    pue: PueResult
    racks: Mapping[str, RackPower]
    cdus: Mapping[str, CduCooling]
    devices: Mapping[str, DeviceStatus]
    overhead: Overhead
    tenants: Mapping[str, TenantPower] = field(default_factory=dict)
    unassigned: UnassignedPower = UnassignedPower((), 0.0, ())
    shelves: Mapping[str, ShelfRedundancy] = field(default_factory=dict)


@dataclass(frozen=True)
class Published:
    """What one compute tick hands to every sink (swapped in as a whole, never mutated)."""

    site: Site
    snapshot: Snapshot
    totals: Totals = field(default_factory=lambda: Totals({}))
    device_energy: Mapping[str, DeviceEnergy] = field(default_factory=dict)
    shard: tuple[int, int] | None = None
    health: Health = field(default_factory=Health)  # the poller's own counters at this tick
