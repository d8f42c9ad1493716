"""The pure compute core: table-driven cases and hypothesis properties of its invariants."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dcim.compute import compute
from dcim.compute.cooling import heat_removed_w
from dcim.config import parse_config
from dcim.coolant import COOLANTS
from dcim.profile import ModbusProfile, ProfileRegistry, SnmpProfile
from dcim.readings import PollResult, failed
from dcim.site import Site, build_site
from dcim.state import latest

NOW = 1_800_000_000.0


def _registry() -> ProfileRegistry:
    pdu = SnmpProfile.model_validate({
        "name": "pdu", "kind": "pdu", "protocol": "snmp", "description": "test pdu",
        "points": {"power_w": {"oid": "1.3.6.1.4.1.1.1.0"}, "current_a": {"walk": "1.3.6.1.4.1.1.2",
                                                                          "aggregate": "rows"}}})
    meter = ModbusProfile.model_validate({
        "name": "meter", "kind": "meter", "protocol": "modbus", "description": "test meter",
        "points": {"power_w": {"address": 0, "type": "float32"}}})
    ups = SnmpProfile.model_validate({
        "name": "ups", "kind": "ups", "protocol": "snmp", "description": "test ups",
        "points": {"input_power_w": {"oid": "1.3.6.1.2.1.33.1.3.3.1.5.1"},
                   "output_power_w": {"oid": "1.3.6.1.2.1.33.1.4.4.1.4.1"}}})
    chiller = ModbusProfile.model_validate({
        "name": "chiller", "kind": "chiller", "protocol": "modbus", "description": "test chiller",
        "points": {"power_w": {"address": 0, "type": "float32"}}})
    cdu = ModbusProfile.model_validate({
        "name": "cdu", "kind": "cdu", "protocol": "modbus", "description": "test cdu",
        "points": {n: {"address": i * 2, "type": "float32"} for i, n in enumerate(
            ["supply_temp_c", "return_temp_c", "flow_lpm", "pump_power_w", "leak"])}})
    profiles = {p.name: p for p in (pdu, meter, ups, chiller, cdu)}
    return ProfileRegistry(profiles, {})


REGISTRY = _registry()


def make_site(config: dict[str, Any]) -> Site:
    return build_site(parse_config(config), REGISTRY)


BASE = {
    "site": {"name": "t", "rack_max_kw": 190, "pue_target": 1.25},
    "racks": [{"id": "r1", "cap_kw": 190}, {"id": "r2", "cap_kw": 100, "feed_kw": 80}],
    "devices": [
        {"id": "r1a", "profile": "pdu", "host": "h", "rack": "r1", "feed": "A"},
        {"id": "r1b", "profile": "pdu", "host": "h", "rack": "r1", "feed": "B"},
        {"id": "r2a", "profile": "pdu", "host": "h", "rack": "r2", "feed": "A"},
        {"id": "r2b", "profile": "pdu", "host": "h", "rack": "r2", "feed": "B"},
        {"id": "main", "profile": "meter", "host": "h"},
        {"id": "ups1", "profile": "ups", "host": "h"},
        {"id": "ch1", "profile": "chiller", "host": "h"},
        {"id": "cdu1", "profile": "cdu", "host": "h", "serves": ["r1", "r2"]},
    ],
    "pue": {"facility": ["main"], "it": "racks"},
}


def ok(device: str, age: float = 1.0, **values: Any) -> PollResult:
    return PollResult(device=device, time=NOW - age, duration=0.1, values=values)


def state_of(*results: PollResult) -> Mapping[str, Any]:
    return latest(results)


HEALTHY = (
    ok("r1a", power_w=70_000), ok("r1b", power_w=68_000),
    ok("r2a", power_w=45_000), ok("r2b", power_w=44_000),
    ok("main", power_w=284_000), ok("ups1", input_power_w=10_500, output_power_w=10_000),
    ok("ch1", power_w=30_000),
    ok("cdu1", supply_temp_c=30.0, return_temp_c=40.0, flow_lpm=340.0, pump_power_w=4000, leak=0),
)


def test_healthy_site() -> None:
    snap = compute(make_site(BASE), state_of(*HEALTHY), NOW)
    assert snap.pue.status == "ok"
    assert snap.pue.it_w == 227_000
    assert snap.pue.facility_w == 284_000
    assert snap.pue.value == pytest.approx(284_000 / 227_000)
    assert snap.pue.coverage == 1.0 and snap.pue.missing == ()
    r1, r2 = snap.racks["r1"], snap.racks["r2"]
    assert r1.power_w == 138_000 and r1.feeds == {"A": 70_000, "B": 68_000}
    assert r1.utilization == pytest.approx(138_000 / 190_000)
    assert r1.failover_risk is False
    # r2 draws 89 kW but one feed may carry only 80 kW: losing a feed would trip the other.
    assert r2.failover_risk is True
    assert snap.overhead.cooling_w == 34_000
    assert snap.overhead.ups_loss_w == 500
    assert snap.overhead.other_w == pytest.approx(284_000 - 227_000 - 34_000 - 500)


def test_cdu_heat_and_capture_ratio() -> None:
    snap = compute(make_site(BASE), state_of(*HEALTHY), NOW)
    cdu = snap.cdus["cdu1"]
    expected = 340.0 / 60_000 * 1017.0 * 3950.0 * 10.0
    assert cdu.heat_w == pytest.approx(expected)
    assert cdu.heat_source == "computed"
    assert cdu.capture_ratio == pytest.approx(expected / 227_000)
    assert cdu.leak is False and cdu.delta_t == 10.0


def test_heat_formula_matches_rule_of_thumb() -> None:
    # About 1.5 L/min of PG25 per kW at a 10 K rise.
    assert heat_removed_w(1.5, 10.0, COOLANTS["pg25"]) == pytest.approx(1000, rel=0.01)


@pytest.mark.parametrize(
    ("case", "results", "status", "missing"),
    [
        ("pdu down", [failed("r1b", NOW, 2.0, "timeout", "timeout")], "degraded", ("r1b",)),
        ("pdu stale", [ok("r1b", age=31.0, power_w=68_000)], "degraded", ("r1b",)),
        ("pdu power point invalid", [PollResult("r1b", NOW, 0.1, {}, {"power_w": "sentinel"})],
         "degraded", ("r1b",)),
        ("facility meter down", [failed("main", NOW, 2.0, "exception", "exc 4")], "degraded", ("main",)),
        ("never polled", None, "degraded", ("r2a",)),
    ],
)
def test_pue_withheld(case: str, results: list[PollResult] | None, status: str,
                      missing: tuple[str, ...]) -> None:
    healthy = {r.device: r for r in HEALTHY}
    if results is None:
        del healthy["r2a"]
    else:
        healthy.update({r.device: r for r in results})
    snap = compute(make_site(BASE), state_of(*healthy.values()), NOW)
    assert snap.pue.value is None, case
    assert snap.pue.status == status
    assert snap.pue.missing == missing
    assert snap.pue.coverage == pytest.approx(4 / 5)
    assert snap.pue.reason


def test_rack_total_withheld_but_complete_feed_kept() -> None:
    snap = compute(make_site(BASE), state_of(*HEALTHY[:1], *HEALTHY[2:]), NOW)
    r1 = snap.racks["r1"]
    assert r1.power_w is None and r1.utilization is None and r1.failover_risk is None
    assert r1.feeds == {"A": 70_000, "B": None}
    assert r1.missing == ("r1b",)
    assert snap.racks["r2"].power_w == 89_000
    assert snap.cdus["cdu1"].capture_ratio is None  # r1 unknown: no ratio from half the racks


def test_impossible_pue_is_withheld() -> None:
    results = {r.device: r for r in HEALTHY}
    results["main"] = ok("main", power_w=100_000)  # below IT: a misplaced meter
    snap = compute(make_site(BASE), state_of(*results.values()), NOW)
    assert snap.pue.value is None and snap.pue.status == "degraded"
    assert "below IT" in (snap.pue.reason or "")


def test_no_pue_section() -> None:
    config = {k: v for k, v in BASE.items() if k != "pue"}
    snap = compute(make_site(config), state_of(*HEALTHY), NOW)
    assert snap.pue.status == "unavailable" and snap.pue.value is None


def test_all_inputs_missing_is_unavailable() -> None:
    snap = compute(make_site(BASE), state_of(), NOW)
    assert snap.pue.status == "unavailable" and snap.pue.coverage == 0.0
    assert snap.devices["main"].up is False and snap.devices["main"].error == "not polled yet"


def test_it_from_ups_outputs() -> None:
    config = {**BASE, "pue": {"facility": ["main"], "it": ["ups1"]}}
    snap = compute(make_site(config), state_of(*HEALTHY), NOW)
    assert snap.pue.it_w == 10_000 and snap.pue.value == pytest.approx(28.4)


# --- properties -------------------------------------------------------------------------------

power = st.floats(min_value=0, max_value=190_000, allow_nan=False)
fresh_or_not = st.one_of(st.none(), st.just("stale"), st.just("down"), power)


@st.composite
def sites_and_states(draw: st.DrawFn) -> tuple[Site, list[PollResult]]:
    n_racks = draw(st.integers(1, 6))
    racks = [{"id": f"r{i}", "cap_kw": draw(st.floats(10, 190))} for i in range(n_racks)]
    devices: list[dict[str, Any]] = []
    for rack in racks:
        for feed in draw(st.sampled_from([["A"], ["A", "B"], ["A", "B", "C"]])):
            for k in range(draw(st.integers(1, 2))):
                devices.append({"id": f"{rack['id']}-{feed}{k}", "profile": "pdu", "host": "h",
                                "rack": rack["id"], "feed": feed})
    devices.append({"id": "main", "profile": "meter", "host": "h"})
    site = make_site({"site": {"name": "p"}, "racks": racks, "devices": devices,
                      "pue": {"facility": ["main"], "it": "racks"}})
    results = []
    for dev in devices:
        value = draw(fresh_or_not if dev["id"] != "main"
                     else st.one_of(st.none(), st.floats(0, 3_000_000)))
        if value == "stale":
            results.append(ok(dev["id"], age=1000.0, power_w=1.0))
        elif value == "down":
            results.append(failed(dev["id"], NOW, 1.0, "timeout", "t"))
        elif value is not None:
            results.append(ok(dev["id"], power_w=value))
    return site, results


@settings(max_examples=300, deadline=None)
@given(sites_and_states())
def test_invariants(case: tuple[Site, list[PollResult]]) -> None:
    site, results = case
    snap = compute(site, state_of(*results), NOW)
    fresh = {r.device: float(r.values["power_w"]) for r in results
             if r.up and NOW - r.time <= 30 and "power_w" in r.values}
    assert site.pue is not None
    needed = site.pue.devices
    # No PUE from stale or missing input.
    if any(d not in fresh for d in needed):
        assert snap.pue.value is None
        assert set(snap.pue.missing) == {d for d in needed if d not in fresh}
    assert snap.pue.coverage == pytest.approx(sum(d in fresh for d in needed) / len(needed))
    it_total = 0.0
    for rack in site.racks.values():
        r = snap.racks[rack.id]
        if all(d in fresh for d in rack.devices):
            # Rack total = sum of its feeds; utilization = power / cap.
            assert r.power_w == pytest.approx(math.fsum(fresh[d] for d in rack.devices))
            assert r.power_w == pytest.approx(math.fsum(v for v in r.feeds.values() if v is not None))
            assert r.utilization == pytest.approx(r.power_w / rack.cap_w)
            it_total += r.power_w
        else:
            assert r.power_w is None and r.utilization is None
    if snap.pue.value is not None:
        assert snap.pue.it_w == pytest.approx(it_total)
        assert snap.pue.value == pytest.approx(fresh["main"] / it_total)
        assert snap.pue.value >= 1.0
