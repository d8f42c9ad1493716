"""Tenant power and energy: live power against the contract, energy spans cut into intervals,
and the facility overhead allocated to tenants. Pure: no I/O, no clock (docs/tenants.md).

Energy buckets extend those of compute/energy.py: `tenant:<id>` (the IT energy of the racks a
tenant leases) and `unassigned` (racks without a tenant) beside `facility`, `it`, `rack:<id>`.
A bucket is chosen when the energy is counted, so a rack moved to another tenant by a reload
bills its new tenant from then on and never rewrites the past.

Allocation rule: the facility energy of an accounting step is shared between the tenants and
the unassigned racks in proportion to their IT energy over that step, so the shares always add
up to the site's facility energy. The report's step is the 15-minute interval; the live
counters' step is the current interval so far (an allocation is never taken back).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from dcim.compute.energy import Increment, Method, Totals, buckets_of
from dcim.compute.snapshot import RackPower, TenantPower, UnassignedPower
from dcim.site import Site

INTERVAL_S = 900  # the 15-minute demand interval of the ledger and the report
UNASSIGNED = "unassigned"
TENANT_PREFIX = "tenant:"
FACILITY_PREFIX = "tenant_facility:"
# Allocated facility energy of the unassigned racks (so the allocations add up to facility).
UNASSIGNED_FACILITY = "unassigned_facility"


def tenant_power(site: Site, racks: Mapping[str, RackPower]) -> dict[str, TenantPower]:
    """Every declared tenant's power, summed from its racks' power."""
    out = {}
    for tenant in site.tenants.values():
        missing = tuple(r for r in tenant.racks if racks.get(r) is None
                        or racks[r].power_w is None)
        power = None if missing else sum(racks[r].power_w or 0.0 for r in tenant.racks)
        out[tenant.id] = TenantPower(
            id=tenant.id, contract_w=tenant.contract_w, power_w=power,
            utilization=None if power is None else power / tenant.contract_w,
            racks=len(tenant.racks), missing_racks=missing)
    return out


def unassigned_power(site: Site, racks: Mapping[str, RackPower]) -> UnassignedPower:
    """The racks no declared tenant leases, and their power when all are complete."""
    ids = tuple(r.id for r in site.racks.values() if r.tenant not in site.tenants)
    missing = tuple(r for r in ids if racks[r].power_w is None)
    power = None if missing else sum(racks[r].power_w or 0.0 for r in ids)
    return UnassignedPower(racks=ids, power_w=power, missing_racks=missing)


def ledger_buckets(site: Site, device_id: str) -> list[str]:
    """The buckets a device's energy adds to: compute/energy.py's, and its rack's tenant."""
    out = buckets_of(site, device_id)
    rack = site.racks.get(site.devices[device_id].rack or "")
    if rack is not None:
        tenant = rack.tenant if rack.tenant in site.tenants else None
        out.append(UNASSIGNED if tenant is None else TENANT_PREFIX + tenant)
    return out


def expected_devices(site: Site) -> dict[str, int]:
    """How many devices measure each bucket: what an interval's coverage is counted against.

    Every declared tenant has a bucket, one that leases no rack included (0 devices: complete
    whenever the interval was recorded at all).
    """
    counts: dict[str, int] = {TENANT_PREFIX + t: 0 for t in site.tenants}
    for device_id in site.devices:
        for bucket in ledger_buckets(site, device_id):
            counts[bucket] = counts.get(bucket, 0) + 1
    if site.pue is not None:
        counts.setdefault("facility", 0)
        counts.setdefault("it", 0)
    counts.setdefault(UNASSIGNED, 0)
    return counts


@dataclass(frozen=True)
class Cell:
    """Energy of one bucket in one interval, and how much of it was measured."""

    joules: float = 0.0
    # Device-seconds of the interval covered by readings no further apart than max_age.
    covered_s: float = 0.0
    # Energy from spans longer than max_age (a device was down or dcim stopped): known in total
    # from the counter, spread over the gap in proportion to time, the intervals incomplete.
    gap_j: float = 0.0

    def __add__(self, other: Cell) -> Cell:
        return Cell(self.joules + other.joules, self.covered_s + other.covered_s,
                    self.gap_j + other.gap_j)


def interval_of(t: float) -> int:
    """The start (epoch seconds) of the interval holding t."""
    return math.floor(t / INTERVAL_S) * INTERVAL_S


def spread(start: float, end: float, joules: float) -> list[tuple[int, float, float]]:
    """Energy used over [start, end] cut at interval boundaries, pro rata by time:
    (interval start, joules, seconds) for each interval the span touches."""
    if end <= start:
        return [(interval_of(end), joules, 0.0)]
    out = []
    t = start
    while t < end:
        boundary = min(interval_of(t) + INTERVAL_S, end)
        out.append((interval_of(t), joules * (boundary - t) / (end - start), boundary - t))
        t = boundary
    return out


def interval_cells(site: Site, increment: Increment, start: float, end: float,
                   max_age: float) -> dict[tuple[int, str], Cell]:
    """What one device increment over [start, end] adds to each (interval, bucket)."""
    gap = end - start > max_age
    out: dict[tuple[int, str], Cell] = {}
    for interval, joules, seconds in spread(start, end, increment.joules):
        cell = Cell(joules, 0.0, joules) if gap else Cell(joules, seconds, 0.0)
        for bucket in ledger_buckets(site, increment.device):
            key = (interval, bucket)
            out[key] = out.get(key, Cell()) + cell
    return out


def coverage(cell: Cell | None, devices: int) -> float:
    """Share of an interval a bucket's devices were measured (0 when nothing was recorded)."""
    if cell is None:
        return 0.0
    if devices <= 0:
        # Nothing measures the bucket: complete if nothing was counted either. Energy in an
        # interval dcim never saw running (spread over a gap) has no device count: incomplete.
        return 1.0 if cell.joules == 0 else 0.0
    return min(1.0, cell.covered_s / (devices * INTERVAL_S))


def allocate(facility_j: float, it_j: float, tenant_j: Mapping[str, float],
             unassigned_j: float) -> tuple[dict[str, float], float]:
    """Facility energy shared in proportion to IT energy: (per tenant, unassigned).

    The shares are taken over the tenants' and unassigned racks' sum when the site's IT
    meters (pue.it devices, e.g. UPS outputs) read less than the racks, so the shares never
    exceed the facility energy; with no IT energy at all the overhead stays unassigned.
    """
    base = max(it_j, sum(tenant_j.values()) + unassigned_j)
    if base <= 0:
        return {t: 0.0 for t in tenant_j}, facility_j
    shares = {t: facility_j * j / base for t, j in tenant_j.items()}
    return shares, facility_j - sum(shares.values())


def add_tenant_energy(site: Site, totals: Totals, increments: Iterable[Increment],
                      interval_it: Mapping[str, float]) -> Totals:
    """Totals with the tenants' IT energy and allocated facility energy of these increments.

    interval_it: the IT energy of each bucket (tenant:<id>, unassigned, it) in the current
    interval so far, these increments included; the facility energy of the increments is
    allocated by it (the live counters' accounting step, see the module docstring).
    """
    buckets = dict(totals.buckets)
    facility: dict[Method, float] = {}
    for inc in increments:
        for bucket in ledger_buckets(site, inc.device):
            if bucket.startswith(TENANT_PREFIX) or bucket == UNASSIGNED:
                key = (bucket, inc.method)
                buckets[key] = buckets.get(key, 0.0) + inc.joules
            elif bucket == "facility":
                facility[inc.method] = facility.get(inc.method, 0.0) + inc.joules
    tenants = {b: j for b, j in interval_it.items() if b.startswith(TENANT_PREFIX)}
    for method, joules in facility.items():
        shares, rest = allocate(joules, interval_it.get("it", 0.0), tenants,
                                interval_it.get(UNASSIGNED, 0.0))
        for bucket, share in shares.items():
            key = (FACILITY_PREFIX + bucket.removeprefix(TENANT_PREFIX), method)
            buckets[key] = buckets.get(key, 0.0) + share
        key = (UNASSIGNED_FACILITY, method)
        buckets[key] = buckets.get(key, 0.0) + rest
    return replace(totals, buckets=buckets)
