"""Billing maths over the interval ledger: periods, energy, peak demand, overage, cost.

Pure: the recorded intervals and `now` come in, figures go out (docs/tenants.md has every
rule in words). Energy is never filled in: an interval without a record, or with a device not
measured for part of it, is counted as incomplete and the share of such intervals is reported;
the energy a counter measured across a gap is billed (it was used), but such an interval gives
no peak demand.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from collections.abc import Mapping
from dataclasses import dataclass

from dcim.compute.tenants import (
    INTERVAL_S,
    TENANT_PREFIX,
    UNASSIGNED,
    Cell,
    allocate,
    coverage,
    interval_of,
)
from dcim.site import TenantSpec

J_PER_KWH = 3.6e6
# An interval counts as complete from this coverage on (float sums of split spans).
COMPLETE = 0.999


class PeriodError(ValueError):
    """A period or instant that cannot be reported on; the message says what to give."""


@dataclass(frozen=True)
class Window:
    """[start, end) in epoch seconds, on interval boundaries."""

    start: int
    end: int

    @property
    def hours(self) -> float:
        """Length in hours (a month across a DST change has 743 or 745)."""
        return (self.end - self.start) / 3600.0


def month_window(period: str, timezone: str) -> Window:
    """The calendar month YYYY-MM from midnight on the 1st in the time zone."""
    try:
        year, month = (int(p) for p in period.split("-"))
        first = dt.datetime(year, month, 1, tzinfo=zoneinfo.ZoneInfo(timezone))
    except ValueError:
        raise PeriodError(f"--period {period!r}: give a month as YYYY-MM (e.g. 2026-11)") from None
    nxt = dt.datetime(year + month // 12, month % 12 + 1, 1, tzinfo=first.tzinfo)
    return _aligned(first.timestamp(), nxt.timestamp(), f"--period {period} in {timezone}")


def instant_window(start: str, end: str) -> Window:
    """--from/--to as ISO 8601 instants (without an offset: UTC), on 15-minute boundaries."""
    def parse(flag: str, text: str) -> float:
        try:
            t = dt.datetime.fromisoformat(text)
        except ValueError:
            raise PeriodError(f"{flag} {text!r}: give an ISO 8601 time such as "
                              "2026-11-01T00:00:00-08:00") from None
        return (t if t.tzinfo else t.replace(tzinfo=dt.UTC)).timestamp()
    window = _aligned(parse("--from", start), parse("--to", end), "--from/--to")
    if window.end <= window.start:
        raise PeriodError("--to must be after --from")
    return window


def _aligned(start: float, end: float, what: str) -> Window:
    for t in (start, end):
        if t % INTERVAL_S:
            raise PeriodError(f"{what}: the ledger keeps 15-minute intervals; start and end "
                              "on a quarter hour")
    return Window(int(start), int(end))


@dataclass(frozen=True)
class Recorded:
    """What the ledger holds for a range: interval -> bucket -> (energy cell, device count)."""

    rows: Mapping[int, Mapping[str, tuple[Cell, int]]]

    def cell(self, interval: int, bucket: str) -> Cell | None:
        """The bucket's cell, or None if the interval has no record of it."""
        row = self.rows.get(interval, {}).get(bucket)
        return None if row is None else row[0]

    def complete(self, interval: int, bucket: str) -> bool:
        """Whether every device of the bucket was measured throughout the interval."""
        row = self.rows.get(interval, {}).get(bucket)
        return row is not None and coverage(*row) >= COMPLETE

    def joules(self, interval: int, bucket: str) -> float:
        """The bucket's energy in the interval (0 without a record)."""
        cell = self.cell(interval, bucket)
        return cell.joules if cell is not None else 0.0

    def tenants(self, interval: int) -> dict[str, float]:
        """IT energy of every tenant bucket recorded in the interval."""
        return {b: c.joules for b, (c, _) in self.rows.get(interval, {}).items()
                if b.startswith(TENANT_PREFIX)}


def intervals(window: Window, now: float) -> range:
    """The window's intervals that have ended by `now`."""
    return range(window.start, min(window.end, interval_of(now)), INTERVAL_S)


def allocated_facility(recorded: Recorded, interval: int, bucket: str) -> float:
    """Facility energy allocated to a bucket (tenant:<id> or unassigned) in one interval."""
    shares, rest = allocate(recorded.joules(interval, "facility"), recorded.joules(interval, "it"),
                            recorded.tenants(interval), recorded.joules(interval, UNASSIGNED))
    return rest if bucket == UNASSIGNED else shares.get(bucket, 0.0)


@dataclass(frozen=True)
class TenantBill:
    """One tenant's figures for one window (the fields of `dcim report`)."""

    tenant: str
    name: str
    start: int
    end: int
    it_kwh: float
    facility_kwh: float | None
    pue: float | None
    peak_kw: float | None
    contract_kw: float
    committed_kwh: float
    overage_kwh: float
    minimum_kwh: float
    minimum_adjustment_kwh: float
    model: str | None
    cost: float | None
    currency: str | None
    incomplete_ratio: float
    intervals: int


def tenant_bill(tenant: TenantSpec, window: Window, recorded: Recorded, now: float,
                metered_facility: bool) -> TenantBill:
    """A tenant's bill; metered_facility: the site has a pue section (facility is metered)."""
    bucket = TENANT_PREFIX + tenant.id
    it_j = facility_j = 0.0
    peak_w: float | None = None
    incomplete = 0
    span = intervals(window, now)
    for i in span:
        joules = recorded.joules(i, bucket)
        it_j += joules
        facility_j += allocated_facility(recorded, i, bucket)
        complete = recorded.complete(i, bucket)
        if complete:
            peak_w = max(peak_w or 0.0, joules / INTERVAL_S)
        if not complete or (metered_facility and not (
                recorded.complete(i, "facility") and recorded.complete(i, "it"))):
            incomplete += 1
    it_kwh = it_j / J_PER_KWH
    facility_kwh = facility_j / J_PER_KWH if metered_facility else None
    pue = facility_kwh / it_kwh if facility_kwh is not None and it_kwh > 0 else None
    contract_kw = tenant.contract_w / 1000
    committed_kwh = contract_kw * window.hours
    overage_kwh = max(0.0, it_kwh - committed_kwh)
    billing = tenant.billing
    minimum_kwh = committed_kwh if billing is not None and billing.model == "committed" else (
        (billing.minimum_ratio if billing is not None else 0.0) * committed_kwh)
    adjustment = max(0.0, minimum_kwh - it_kwh)
    cost: float | None = None
    if billing is not None:
        price, surcharge = billing.price_per_kwh, billing.overage_multiplier
        if billing.model == "committed":
            cost = committed_kwh * price + overage_kwh * price * surcharge
        else:
            cost = (it_kwh + adjustment) * price + overage_kwh * price * (surcharge - 1)
            if billing.model == "pue_multiplier":
                site_pue = _site_pue(recorded, span)
                cost = None if site_pue is None else cost * site_pue
    return TenantBill(
        tenant=tenant.id, name=tenant.name, start=window.start, end=window.end, it_kwh=it_kwh,
        facility_kwh=facility_kwh, pue=pue,
        peak_kw=None if peak_w is None else peak_w / 1000, contract_kw=contract_kw,
        committed_kwh=committed_kwh, overage_kwh=overage_kwh, minimum_kwh=minimum_kwh,
        minimum_adjustment_kwh=adjustment, model=billing.model if billing else None,
        cost=None if cost is None else round(cost, 2),
        currency=billing.currency if billing else None,
        incomplete_ratio=incomplete / len(span) if span else 1.0, intervals=len(span))


def _site_pue(recorded: Recorded, span: range) -> float | None:
    facility = sum(recorded.joules(i, "facility") for i in span)
    it = sum(recorded.joules(i, "it") for i in span)
    return facility / it if it > 0 and facility >= it else None


@dataclass(frozen=True)
class SiteTotals:
    """The site over one window; tenants_it_kwh + unassigned_it_kwh is the racks' IT energy,
    it_kwh the site's IT meters (the same when pue.it is racks)."""

    start: int
    end: int
    it_kwh: float
    facility_kwh: float | None
    pue: float | None
    tenants_it_kwh: float
    unassigned_it_kwh: float
    unassigned_facility_kwh: float | None
    incomplete_ratio: float


def site_totals(window: Window, recorded: Recorded, now: float,
                metered_facility: bool) -> SiteTotals:
    """Site IT and facility energy, its energy PUE, and the tenants' and unassigned share."""
    span = intervals(window, now)
    tenants_j = sum(sum(recorded.tenants(i).values()) for i in span)
    unassigned_j = sum(recorded.joules(i, UNASSIGNED) for i in span)
    if metered_facility:
        it_j = sum(recorded.joules(i, "it") for i in span)
        facility_kwh: float | None = sum(recorded.joules(i, "facility") for i in span) / J_PER_KWH
        rest: float | None = sum(allocated_facility(recorded, i, UNASSIGNED)
                                 for i in span) / J_PER_KWH
    else:
        it_j, facility_kwh, rest = tenants_j + unassigned_j, None, None
    incomplete = sum(1 for i in span if not all(
        recorded.complete(i, b) for b in _site_buckets(recorded, i, metered_facility)))
    it_kwh = it_j / J_PER_KWH
    pue = facility_kwh / it_kwh if facility_kwh is not None and it_kwh > 0 else None
    return SiteTotals(start=window.start, end=window.end, it_kwh=it_kwh,
                      facility_kwh=facility_kwh, pue=pue, tenants_it_kwh=tenants_j / J_PER_KWH,
                      unassigned_it_kwh=unassigned_j / J_PER_KWH, unassigned_facility_kwh=rest,
                      incomplete_ratio=incomplete / len(span) if span else 1.0)


def _site_buckets(recorded: Recorded, interval: int, metered_facility: bool) -> list[str]:
    """What must be complete for the site's figures of an interval."""
    if metered_facility:
        return ["facility", "it"]
    return [UNASSIGNED, *recorded.tenants(interval)]
