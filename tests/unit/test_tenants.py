"""Tenant energy and cost: live power, the interval ledger, allocation, billing and the report.

The month tests feed the daemon's own energy path (dcim/sim/month.py) with the simulator's
physics stepped every 15 minutes, so a whole billing month runs in about a second, and compare
the report with the energy the physics delivered.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from support.tenant_month import quantum_kwh, sim_config
from typer.testing import CliRunner

from dcim import report
from dcim.cli import app
from dcim.compute.billing import (
    PeriodError,
    Recorded,
    instant_window,
    month_window,
    site_totals,
    tenant_bill,
)
from dcim.compute.energy import Increment
from dcim.compute.snapshot import RackPower
from dcim.compute.tenants import (
    INTERVAL_S,
    Cell,
    allocate,
    interval_cells,
    spread,
    tenant_power,
    unassigned_power,
)
from dcim.config import parse_config
from dcim.daemon.energy_store import EnergyStore
from dcim.daemon.intervals import read_recorded
from dcim.profile import ProfileRegistry
from dcim.sim import presets
from dcim.sim.month import MonthReplay
from dcim.sim.topology import SimSite, SimTenant
from dcim.site import Site, build_site

REGISTRY = ProfileRegistry.load()
T0 = 1_800_000_000  # on an interval boundary (a multiple of 900)


def _site(tenants: dict[str, object] | None = None,
          leases: tuple[str | None, ...] = ("acme", "acme", "beta", None)) -> Site:
    data = {
        "site": {"name": "s"},
        "tenants": tenants if tenants is not None else {
            "acme": {"name": "Acme", "contract_kw": 100,
                     "billing": {"model": "committed", "price_per_kwh": 0.1, "currency": "USD",
                                 "overage_multiplier": 1.5}},
            "beta": {"name": "Beta", "contract_kw": 100,
                     "billing": {"model": "metered", "price_per_kwh": 0.2, "currency": "EUR",
                                 "minimum_ratio": 0.5}},
            "idle": {"name": "Idle", "contract_kw": 10}},
        "racks": [{"id": f"r{i}", **({"tenant": t} if t else {})}
                  for i, t in enumerate(leases, start=1)],
        "devices": [{"id": f"p{i}", "profile": "apc-rpdu2", "host": "127.0.0.1", "rack": f"r{i}"}
                    for i in range(1, 5)] + [
            {"id": "main", "profile": "schneider-pm5500", "host": "127.0.0.1"}],
        "pue": {"facility": ["main"], "it": "racks"},
    }
    return build_site(parse_config(data), REGISTRY)


def _rack(rack_id: str, power: float | None) -> RackPower:
    return RackPower(id=rack_id, cap_w=190e3, feed_capacity_w=190e3, feeds={"A": power},
                     power_w=power, utilization=None, failover_risk=None,
                     missing=() if power is not None else ("p",))


def test_tenant_power_only_when_every_rack_is_complete() -> None:
    site = _site()
    racks = {"r1": _rack("r1", 40e3), "r2": _rack("r2", 30e3), "r3": _rack("r3", None),
             "r4": _rack("r4", 5e3)}
    live = tenant_power(site, racks)
    assert live["acme"].power_w == 70e3 and live["acme"].utilization == pytest.approx(0.7)
    assert live["beta"].power_w is None and live["beta"].missing_racks == ("r3",)
    assert live["idle"].power_w == 0.0  # leases nothing: truly zero
    un = unassigned_power(site, racks)
    assert un.racks == ("r4",) and un.power_w == 5e3


def test_spread_cuts_at_boundaries_and_keeps_every_joule() -> None:
    parts = spread(T0 - 100, T0 + 1000, 1100.0)
    assert [(i, round(j, 6), s) for i, j, s in parts] == [
        (T0 - INTERVAL_S, 100.0, 100), (T0, 900.0, 900), (T0 + INTERVAL_S, 100.0, 100)]


def test_a_span_longer_than_max_age_is_gap_energy_not_coverage() -> None:
    site = _site()
    cells = interval_cells(site, Increment("p1", 9000.0, "counter"), T0, T0 + 1800, 30.0)
    assert cells[(T0, "tenant:acme")] == Cell(4500.0, 0.0, 4500.0)
    fresh = interval_cells(site, Increment("p1", 100.0, "counter"), T0, T0 + 10, 30.0)
    assert fresh[(T0, "rack:r1")] == Cell(100.0, 10.0, 0.0)


def test_allocation_adds_up_to_the_facility_energy() -> None:
    shares, rest = allocate(150.0, 100.0, {"tenant:a": 60.0, "tenant:b": 30.0}, 10.0)
    assert shares == {"tenant:a": 90.0, "tenant:b": 45.0} and rest == pytest.approx(15.0)
    # IT meters reading below the racks: shares taken over the racks, never above facility
    shares, rest = allocate(150.0, 80.0, {"tenant:a": 60.0, "tenant:b": 30.0}, 10.0)
    assert sum(shares.values()) + rest == pytest.approx(150.0) and rest >= 0
    # no IT energy: the overhead stays unassigned
    assert allocate(50.0, 0.0, {"tenant:a": 0.0}, 0.0) == ({"tenant:a": 0.0}, 50.0)


def test_month_windows_follow_the_tenants_time_zone() -> None:
    nov = month_window("2026-11", "America/Los_Angeles")  # DST ends on 1 November
    assert nov.hours == 30 * 24 + 1
    assert month_window("2026-03", "Europe/Berlin").hours == 31 * 24 - 1
    assert month_window("2026-12", "UTC").end == month_window("2027-01", "UTC").start
    with pytest.raises(PeriodError, match="YYYY-MM"):
        month_window("2026-13", "UTC")
    with pytest.raises(PeriodError, match="quarter hour"):
        instant_window("2026-11-01T00:10:00Z", "2026-11-02T00:00:00Z")
    assert instant_window("2026-11-01T00:00:00", "2026-11-01T01:00:00+00:00").hours == 1


def _recorded(cells: dict[tuple[int, str], tuple[float, float, int]]) -> Recorded:
    rows: dict[int, dict[str, tuple[Cell, int]]] = {}
    for (i, bucket), (joules, covered, devices) in cells.items():
        rows.setdefault(i, {})[bucket] = (Cell(joules, covered, 0.0), devices)
    return Recorded(rows)


def _full(devices: int) -> float:
    return devices * INTERVAL_S


def test_bills_under_each_model() -> None:
    site = _site()
    # Two intervals: acme draws 120 kW then 40 kW (contract 100 kW), beta 20 kW both times.
    cells = {}
    for n, (acme_kw, beta_kw) in enumerate(((120, 20), (40, 20))):
        i = T0 + n * INTERVAL_S
        acme_j, beta_j = acme_kw * 1e3 * INTERVAL_S, beta_kw * 1e3 * INTERVAL_S
        cells.update({
            (i, "tenant:acme"): (acme_j, _full(2), 2), (i, "tenant:beta"): (beta_j, _full(1), 1),
            (i, "tenant:idle"): (0.0, 0.0, 0), (i, "unassigned"): (0.0, _full(1), 1),
            (i, "it"): (acme_j + beta_j, _full(4), 4),
            (i, "facility"): ((acme_j + beta_j) * 1.25, _full(1), 1)})
    recorded = _recorded(cells)
    window = instant_window("2027-01-15T08:00:00Z", "2027-01-15T08:30:00Z")
    assert window.start == T0
    now = window.end + 1
    acme = tenant_bill(site.tenants["acme"], window, recorded, now, True)
    assert acme.it_kwh == pytest.approx(40.0)  # (120 + 40) kW x 0.25 h
    assert acme.peak_kw == pytest.approx(120.0)
    assert acme.facility_kwh == pytest.approx(50.0) and acme.pue == pytest.approx(1.25)
    assert acme.committed_kwh == pytest.approx(50.0)  # 100 kW x 0.5 h
    assert acme.overage_kwh == 0.0 and acme.minimum_adjustment_kwh == pytest.approx(10.0)
    assert acme.cost == pytest.approx(5.0)  # the commitment: 50 kWh x 0.1
    assert acme.incomplete_ratio == 0.0 and acme.intervals == 2
    beta = tenant_bill(site.tenants["beta"], window, recorded, now, True)
    assert beta.it_kwh == pytest.approx(10.0)
    # metered with a 50 % minimum: 25 kWh billed although 10 kWh were used
    assert beta.minimum_kwh == pytest.approx(25.0)
    assert beta.minimum_adjustment_kwh == pytest.approx(15.0)
    assert beta.cost == pytest.approx(5.0) and beta.currency == "EUR"
    idle = tenant_bill(site.tenants["idle"], window, recorded, now, True)
    assert idle.it_kwh == 0.0 and idle.cost is None and idle.peak_kw == 0.0
    totals = site_totals(window, recorded, now, True)
    assert totals.it_kwh == pytest.approx(totals.tenants_it_kwh + totals.unassigned_it_kwh)
    assert totals.facility_kwh == pytest.approx(
        acme.facility_kwh + (beta.facility_kwh or 0) + (totals.unassigned_facility_kwh or 0))


def test_overage_and_pue_multiplier() -> None:
    site = _site({
        "big": {"name": "Big", "contract_kw": 100,
                "billing": {"model": "committed", "price_per_kwh": 0.1, "currency": "USD",
                            "overage_multiplier": 2.0}},
        "pm": {"name": "PM", "contract_kw": 100,
               "billing": {"model": "pue_multiplier", "price_per_kwh": 0.1, "currency": "USD"}}},
        ("big", "big", "pm", None))
    j = 200e3 * INTERVAL_S  # 200 kW for one interval: 50 kWh
    recorded = _recorded({
        (T0, "tenant:big"): (j, _full(2), 2), (T0, "tenant:pm"): (j, _full(1), 1),
        (T0, "unassigned"): (0.0, _full(1), 1), (T0, "it"): (2 * j, _full(4), 4),
        (T0, "facility"): (2 * j * 1.5, _full(1), 1)})
    window = instant_window("2027-01-15T08:00:00Z", "2027-01-15T08:15:00Z")
    big = tenant_bill(site.tenants["big"], window, recorded, T0 + 2000, True)
    assert big.committed_kwh == pytest.approx(25.0) and big.overage_kwh == pytest.approx(25.0)
    assert big.cost == pytest.approx(25 * 0.1 + 25 * 0.1 * 2.0)
    pm = tenant_bill(site.tenants["pm"], window, recorded, T0 + 2000, True)
    assert pm.cost == pytest.approx(50 * 0.1 * 1.5)


def test_incomplete_intervals_are_counted_never_filled() -> None:
    site = _site()
    j = 50e3 * INTERVAL_S
    recorded = _recorded({
        (T0, "tenant:acme"): (j, _full(2) / 2, 2),  # one PDU unmeasured for the interval
        (T0, "it"): (j, _full(4), 4), (T0, "facility"): (j, _full(1), 1)})
    window = instant_window("2027-01-15T08:00:00Z", "2027-01-15T08:45:00Z")
    bill = tenant_bill(site.tenants["acme"], window, recorded, window.end, True)
    # the first interval half covered, the next two never recorded (dcim was not running)
    assert bill.incomplete_ratio == 1.0 and bill.peak_kw is None
    assert bill.it_kwh == pytest.approx(12.5)  # what was measured, nothing made up


def _tenanted_tiny() -> SimSite:
    tiny = presets.tiny(1)
    return presets.lease(tiny, (
        (SimTenant(id="acme", name="Acme AI", contract_kw=100, model="committed",
                   price_per_kwh=0.085, overage_multiplier=1.5, minimum_ratio=0.5,
                   timezone="America/Los_Angeles"), 1),))


def test_a_billing_month_on_the_simulator_equals_the_integrated_truth(tmp_path: Path) -> None:
    sim = _tenanted_tiny()
    text, site = sim_config(sim)
    window = month_window("2025-11", "America/Los_Angeles")
    replay = MonthReplay(sim, 1, site, tmp_path / "state.db", INTERVAL_S, window.start - 900)
    replay.run_until(window.start + 9 * 86400)
    replay.restart()  # mid-period: nothing counted twice
    replay.reset_counter("r01-pdu-a")  # a user reset of acme's PDU counter
    replay.run_until(window.start + 20 * 86400)
    replay.glitch("r01-pdu-b")  # one reading of 0, then the real count again
    replay.run_until(window.end)
    replay.close()

    config = tmp_path / "site.yaml"
    config.write_text(text + f"state_dir: {tmp_path}\n")
    out = CliRunner().invoke(app, ["report", "--config", str(config), "--period", "2025-11",
                                   "--format", "json"])
    assert out.exit_code == 0, out.output
    got = json.loads(out.output)
    assert got["site"] == "sim-tiny" and got["from"] == "2025-11-01T07:00:00Z"
    [acme] = got["tenants"]
    truth = replay.truth_kwh("tenant:acme", window.start, window.end)
    assert abs(acme["it_kwh"] - truth) <= quantum_kwh(replay, "tenant:acme")
    assert acme["incomplete_ratio"] == 0.0 and acme["contract_kw"] == 100
    assert acme["intervals"] == 721 * 4  # DST ended on 2 November: a 721-hour month
    assert acme["peak_kw"] > 100  # a GB300-class rack runs above this small contract
    assert acme["overage_kwh"] == pytest.approx(acme["it_kwh"] - 100 * 721, abs=1e-3)
    assert acme["cost"] == pytest.approx(
        100 * 721 * 0.085 + acme["overage_kwh"] * 0.085 * 1.5, abs=0.01)
    totals = got["site_totals"]
    site_truth = replay.truth_kwh("it", window.start, window.end)
    assert abs(totals["it_kwh"] - site_truth) <= quantum_kwh(replay, "it")
    assert totals["tenants_it_kwh"] + totals["unassigned_it_kwh"] == pytest.approx(
        totals["it_kwh"], abs=1e-3)
    fac_truth = replay.truth_kwh("facility", window.start, window.end)
    assert abs(totals["facility_kwh"] - fac_truth) <= quantum_kwh(replay, "facility")
    assert acme["facility_kwh"] + totals["unassigned_facility_kwh"] == pytest.approx(
        totals["facility_kwh"], abs=1e-2)
    # the live counters count the same energy
    live = replay.totals_by_bucket
    assert live["tenant:acme"] / 3.6e6 == pytest.approx(acme["it_kwh"], rel=1e-4)
    assert live["tenant_facility:acme"] / 3.6e6 == pytest.approx(acme["facility_kwh"], rel=1e-2)

    csv_out = CliRunner().invoke(app, ["report", "-c", str(config), "--period", "2025-11",
                                       "--format", "csv", "--tenant", "acme"])
    header, row = csv_out.output.splitlines()
    assert header.split(",") == list(report.CSV_COLUMNS)
    assert row.startswith("acme,Acme AI,2025-11-01T07:00:00Z,2025-12-01T08:00:00Z,")


def test_a_restart_mid_interval_counts_nothing_twice(tmp_path: Path) -> None:
    sim = _tenanted_tiny()
    _, site = sim_config(sim)
    start = T0 - 900
    replay = MonthReplay(sim, 1, site, tmp_path / "state.db", 300.0, start)
    replay.run_until(T0 + 600)  # stops 10 minutes into an interval
    replay.restart()
    replay.run_until(T0 + 3600)
    replay.close()
    recorded = read_recorded(tmp_path / "state.db", T0, T0 + 3600)
    for i in range(T0, T0 + 3600, INTERVAL_S):
        got = recorded.joules(i, "tenant:acme") / 3.6e6
        want = replay.truth_kwh("tenant:acme", i, i + INTERVAL_S)
        assert abs(got - want) <= quantum_kwh(replay, "tenant:acme")
        assert recorded.complete(i, "tenant:acme")


def test_a_failed_save_keeps_the_interval_deltas(tmp_path: Path) -> None:
    site = _site()
    store = EnergyStore(tmp_path / "state.db", now=T0)
    store.intervals.add(site, Increment("p1", 3.6e6, "counter"), T0, T0 + 10, 30.0)
    store.intervals.mark(site, T0)
    blocker = sqlite3.connect(tmp_path / "state.db")
    blocker.execute("BEGIN EXCLUSIVE")
    assert not store.save({}, store.load()[1])
    assert store.intervals.pending > 0
    blocker.rollback()
    blocker.close()
    assert store.save({}, store.load()[1])
    store.close()
    recorded = read_recorded(tmp_path / "state.db", T0, T0 + INTERVAL_S)
    assert recorded.joules(T0, "tenant:acme") == 3.6e6
    assert recorded.rows[T0]["tenant:idle"] == (Cell(), 0)


def test_report_refuses_unclear_periods(tmp_path: Path) -> None:
    text, _ = sim_config(_tenanted_tiny())
    config = tmp_path / "site.yaml"
    config.write_text(text + f"state_dir: {tmp_path}\n")
    runner = CliRunner()
    both = runner.invoke(app, ["report", "-c", str(config), "--period", "2026-11",
                               "--from", "2026-11-01T00:00:00Z"])
    assert both.exit_code == 2 and "not both" in both.output
    unknown = runner.invoke(app, ["report", "-c", str(config), "--period", "2026-11",
                                  "--tenant", "nobody"])
    assert unknown.exit_code == 2 and "unknown tenant" in unknown.output
    missing = runner.invoke(app, ["report", "-c", str(config), "--period", "2026-11"])
    assert missing.exit_code == 1 and "no energy ledger" in missing.output


def test_tenant_series_are_withheld_with_an_incomplete_rack() -> None:
    from dcim.compute import compute
    from dcim.compute.energy import Totals
    from dcim.compute.snapshot import Published
    from dcim.readings import PollResult
    from dcim.sinks.exposition import write
    from dcim.sinks.prometheus_metrics import render
    from dcim.state import latest

    site = _site()
    results = [PollResult(dev, 100.0, 0.1, {"power_w": 30_000.0})
               for dev in ("p1", "p2", "p4", "main")]
    totals = Totals({("tenant:acme", "counter"): 7.0, ("tenant_facility:acme", "counter"): 9.0,
                     ("unassigned", "counter"): 1.0})
    pub = Published(site=site, snapshot=compute(site, latest(results), 101.0), totals=totals)
    text = write(render(pub)).decode()
    assert 'dcim_tenant_power_watts{site="s",tenant="acme"} 60000' in text
    assert 'dcim_tenant_utilization_ratio{site="s",tenant="acme"} 0.6' in text
    assert 'dcim_tenant_power_watts{site="s",tenant="beta"}' not in text  # r3 not polled
    assert 'dcim_tenant_missing_racks{site="s",tenant="beta"} 1' in text
    assert 'dcim_tenant_contract_watts{site="s",tenant="beta"} 100000' in text
    assert 'dcim_tenant_it_energy_joules_total{site="s",tenant="acme"} 7' in text
    assert 'dcim_tenant_facility_energy_joules_total{site="s",tenant="acme"} 9' in text
    assert 'dcim_unassigned_racks{site="s"} 1' in text
    assert 'dcim_unassigned_power_watts{site="s"} 30000' in text


def test_energy_used_while_dcim_was_down_is_billed_once_and_marked(tmp_path: Path) -> None:
    sim = _tenanted_tiny()
    _, site = sim_config(sim)
    replay = MonthReplay(sim, 1, site, tmp_path / "state.db", 300.0, T0 - 900)
    replay.run_until(T0 + 3600)
    replay.stopped_until(T0 + 3 * 3600)  # two hours down
    replay.run_until(T0 + 5 * 3600)
    replay.close()
    window = instant_window("2027-01-15T08:00:00Z", "2027-01-15T13:00:00Z")
    recorded = read_recorded(tmp_path / "state.db", window.start, window.end)
    bill = tenant_bill(site.tenants["acme"], window, recorded, window.end, True)
    truth = replay.truth_kwh("tenant:acme", window.start, window.end)
    assert abs(bill.it_kwh - truth) <= quantum_kwh(replay, "tenant:acme")
    # the eight intervals dcim missed (and the one it restarted in) are incomplete, not filled
    assert bill.incomplete_ratio == pytest.approx(9 / 20)
    assert not recorded.complete(T0 + 2 * 3600, "tenant:acme")
    assert recorded.cell(T0 + 2 * 3600, "tenant:acme").gap_j > 0  # type: ignore[union-attr]


def test_a_reload_moving_a_rack_bills_the_new_tenant_from_then_on(tmp_path: Path) -> None:
    from dcim.daemon.ledger import EnergyLedger
    from dcim.readings import PollResult

    before = _site(leases=("acme", "acme", "beta", None))
    after = _site(leases=("beta", "acme", "beta", None))  # r1 moves to beta
    ledger = EnergyLedger.open(tmp_path / "state.db", T0)

    def poll(site: Site, t: float, wh: float) -> None:
        ledger.observe(site, site.devices["p1"], PollResult(
            "p1", T0 + t, 0.1, {"power_w": 36_000.0, "energy_wh": wh}))
        ledger.flush(site, T0 + t)

    poll(before, 0, 1000.0)
    poll(before, 10, 1100.0)  # 100 Wh for acme
    poll(after, 20, 1200.0)  # the reload: the next 100 Wh are beta's
    ledger.close()
    recorded = read_recorded(tmp_path / "state.db", T0, T0 + INTERVAL_S)
    assert recorded.joules(T0, "tenant:acme") == pytest.approx(100 * 3600)
    assert recorded.joules(T0, "tenant:beta") == pytest.approx(100 * 3600)
    assert recorded.joules(T0, "rack:r1") == pytest.approx(200 * 3600)
    # beta's bucket now counts p1 too (the most devices seen in the interval)
    assert recorded.rows[T0]["tenant:beta"][1] == 2
