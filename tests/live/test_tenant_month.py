"""A whole billing month of hall-18mw (three tenants, 60 leased racks, 178 metered devices)
through the daemon's energy path (dcim/sim/month.py), with a restart, a counter reset and a
glitch inside it: every tenant's report equals the physics' integrated energy within the
counters' quantization, and the site totals reconcile.

No server: it lives here because it takes about half a minute of CPU (tests/unit runs the
same path on the tiny site).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from support.tenant_month import quantum_kwh, sim_config

from dcim import report
from dcim.compute.billing import month_window
from dcim.compute.tenants import INTERVAL_S
from dcim.daemon.intervals import read_recorded
from dcim.sim import presets
from dcim.sim.month import MonthReplay


def test_hall_18mw_month_equals_the_integrated_truth(tmp_path: Path) -> None:
    sim = presets.build("hall-18mw", 1)
    _, site = sim_config(sim)
    assert set(site.tenants) == {"acme", "borealis", "cobalt"}
    window = month_window("2025-11", "America/Los_Angeles")
    replay = MonthReplay(sim, 1, site, tmp_path / "state.db", INTERVAL_S, window.start - 900)
    replay.run_until(window.start + 11 * 86400)
    replay.restart()
    replay.reset_counter("r01-pdu-a")
    replay.glitch("r30-pdu-b")
    replay.run_until(window.end)
    replay.close()

    recorded = read_recorded(tmp_path / "state.db", window.start, window.end)
    windows, site_window = report.windows(site, report.Period(month="2025-11"), None)
    got = report.build(site, recorded, windows, site_window, window.end + 3600)
    bills = {b["tenant"]: b for b in got["tenants"]}  # type: ignore[attr-defined, index]
    for tenant, bill in bills.items():
        truth = replay.truth_kwh(f"tenant:{tenant}", window.start, window.end)
        assert abs(bill["it_kwh"] - truth) <= quantum_kwh(replay, f"tenant:{tenant}"), tenant
        assert bill["incomplete_ratio"] == 0.0 and bill["intervals"] == 721 * 4
    assert bills["acme"]["overage_kwh"] > 0  # 24 racks at 120-140 kW on a 3000 kW contract
    assert bills["cobalt"]["cost"] == pytest.approx(
        bills["cobalt"]["it_kwh"] * 0.07 * got["site_totals"]["pue"], rel=1e-3)  # type: ignore[index]
    totals = got["site_totals"]
    assert isinstance(totals, dict)
    assert totals["tenants_it_kwh"] + totals["unassigned_it_kwh"] == pytest.approx(
        totals["it_kwh"], abs=1e-2)
    allocated = sum(b["facility_kwh"] for b in bills.values()) + totals["unassigned_facility_kwh"]
    assert allocated == pytest.approx(totals["facility_kwh"], abs=1e-2)
    assert abs(totals["facility_kwh"] - replay.truth_kwh("facility", window.start, window.end)) \
        <= quantum_kwh(replay, "facility")
