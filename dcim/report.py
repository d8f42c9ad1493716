"""`dcim report`: tenant energy and cost for a period, from the interval ledger.

The figures come from compute/billing.py; this module picks each tenant's window (a month in
its own time zone, or the --from/--to instants), and renders JSON, CSV (the columns are
documented for invoicing in docs/tenants.md) or a table.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from dcim.compute.billing import (
    PeriodError,
    Recorded,
    SiteTotals,
    TenantBill,
    Window,
    instant_window,
    month_window,
    site_totals,
    tenant_bill,
)
from dcim.site import Site, TenantSpec

# The CSV columns, in order (docs/tenants.md "CSV columns").
CSV_COLUMNS = (
    "tenant", "name", "from", "to", "it_kwh", "facility_kwh", "pue", "peak_kw", "contract_kw",
    "committed_kwh", "overage_kwh", "minimum_kwh", "minimum_adjustment_kwh", "model", "cost",
    "currency", "incomplete_ratio", "intervals",
)


@dataclass(frozen=True)
class Period:
    """What was asked: a month (each tenant's own time zone) or two instants."""

    month: str | None = None
    start: str | None = None
    end: str | None = None

    def window(self, timezone: str) -> Window:
        """The window in a time zone (instants are the same everywhere)."""
        if self.month is not None:
            return month_window(self.month, timezone)
        if self.start is None or self.end is None:
            raise PeriodError("give --period YYYY-MM, or both --from and --to")
        return instant_window(self.start, self.end)


def _zone(tenant: TenantSpec) -> str:
    return tenant.billing.timezone if tenant.billing is not None else "UTC"


def site_zone(tenants: Sequence[TenantSpec]) -> str:
    """The site window's time zone: the tenants' when they all share one, else UTC."""
    zones = {_zone(t) for t in tenants}
    return zones.pop() if len(zones) == 1 else "UTC"


def windows(site: Site, period: Period, only: str | None) -> tuple[dict[str, Window], Window]:
    """Each reported tenant's window and the site's."""
    if only is not None and only not in site.tenants:
        known = ", ".join(sorted(site.tenants)) or "none in this config"
        raise PeriodError(f"--tenant {only!r}: unknown tenant (tenants: {known})")
    tenants = [t for t in site.tenants.values() if only is None or t.id == only]
    return ({t.id: period.window(_zone(t)) for t in tenants},
            period.window(site_zone(list(site.tenants.values()))))


def build(site: Site, recorded: Recorded, tenant_windows: dict[str, Window],
          site_window: Window, now: float) -> dict[str, object]:
    """The report as the JSON object of the contract (more fields than it names)."""
    metered = site.pue is not None
    bills = [tenant_bill(site.tenants[t], w, recorded, now, metered)
             for t, w in tenant_windows.items()]
    totals = site_totals(site_window, recorded, now, metered)
    return {
        "site": site.name, "from": _iso(site_window.start), "to": _iso(site_window.end),
        "tenants": [_bill_json(b) for b in bills],
        "site_totals": _totals_json(totals),
    }


def _iso(t: int) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def _r(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


def _bill_json(b: TenantBill) -> dict[str, object]:
    return {
        "tenant": b.tenant, "name": b.name, "from": _iso(b.start), "to": _iso(b.end),
        "it_kwh": _r(b.it_kwh), "facility_kwh": _r(b.facility_kwh), "pue": _r(b.pue, 4),
        "peak_kw": _r(b.peak_kw), "contract_kw": b.contract_kw,
        "committed_kwh": _r(b.committed_kwh), "overage_kwh": _r(b.overage_kwh),
        "minimum_kwh": _r(b.minimum_kwh), "minimum_adjustment_kwh": _r(b.minimum_adjustment_kwh),
        "model": b.model, "cost": b.cost, "currency": b.currency,
        "incomplete_ratio": _r(b.incomplete_ratio, 4), "intervals": b.intervals,
    }


def _totals_json(t: SiteTotals) -> dict[str, object]:
    return {
        "it_kwh": _r(t.it_kwh), "facility_kwh": _r(t.facility_kwh), "pue": _r(t.pue, 4),
        "tenants_it_kwh": _r(t.tenants_it_kwh), "unassigned_it_kwh": _r(t.unassigned_it_kwh),
        "unassigned_facility_kwh": _r(t.unassigned_facility_kwh),
        "incomplete_ratio": _r(t.incomplete_ratio, 4),
    }


def _csv(report: dict[str, object]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in _rows(report):
        writer.writerow({k: "" if row.get(k) is None else row[k] for k in CSV_COLUMNS})
    return out.getvalue()


def _rows(report: dict[str, object]) -> list[dict[str, object]]:
    rows = report["tenants"]
    assert isinstance(rows, list)
    return rows


def _table(report: dict[str, object]) -> str:
    cols = ("tenant", "it_kwh", "facility_kwh", "pue", "peak_kw", "contract_kw", "overage_kwh",
            "cost", "currency", "incomplete_ratio")
    lines = [[c for c in cols]]
    for row in _rows(report):
        lines.append(["-" if row.get(c) is None else str(row[c]) for c in cols])
    totals = report["site_totals"]
    assert isinstance(totals, dict)
    widths = [max(len(line[i]) for line in lines) for i in range(len(cols))]
    text = [f"site {report['site']}  {report['from']} .. {report['to']}"]
    text += ["  ".join(v.rjust(w) for v, w in zip(line, widths, strict=True)) for line in lines]
    text.append("site: " + ", ".join(f"{k} {'-' if v is None else v}" for k, v in totals.items()))
    return "\n".join(text) + "\n"


FORMATS: dict[str, Callable[[dict[str, object]], str]] = {
    "json": lambda r: json.dumps(r, indent=2) + "\n",
    "csv": _csv,
    "table": _table,
}


def ledger_path(state_dir: Path) -> Path:
    """Where the daemon keeps the interval ledger (with the energy state)."""
    return state_dir / "state.db"
