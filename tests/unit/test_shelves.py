"""Power shelves in compute: they feed their rack like PDUs, and their redundancy verdict."""

from __future__ import annotations

from typing import Any

import pytest
from support.profiles import shipped_registry

from dcim.compute import compute
from dcim.compute.snapshot import Published
from dcim.config import parse_config
from dcim.readings import PollResult
from dcim.sim import presets
from dcim.sim.control import route
from dcim.sim.world import ActionError, World
from dcim.sinks.influx_lines import snapshot_entities
from dcim.sinks.mqtt_layout import EventTracker, state_messages
from dcim.sinks.prometheus_metrics import render
from dcim.site import build_site
from dcim.state import latest

NOW = 1_800_000_000.0
SITE = build_site(parse_config({
    "site": {"name": "t"},
    "racks": [{"id": "r1"}],
    "devices": [
        {"id": "s1", "profile": "redfish-power-shelf", "host": "h", "rack": "r1", "feed": "A"},
        {"id": "s2", "profile": "redfish-power-shelf", "host": "h", "rack": "r1", "feed": "B"},
    ],
}), shipped_registry())


def shelf(device: str, power: float, healthy: dict[str, int], out: dict[str, float] | None,
          cap: float = 5500.0) -> PollResult:
    values: dict[str, Any] = {"power_w": power, "supply_healthy": healthy,
                              "supply_capacity_w": {s: cap for s in healthy}}
    if out is not None:
        values["supply_power_w"] = out
    return PollResult(device=device, time=NOW - 1, duration=0.1, values=values)


def snapshot(*results: PollResult) -> Any:
    return compute(SITE, latest(results), NOW)


def test_shelves_feed_their_rack_and_redundancy_is_judged_on_what_is_left() -> None:
    five = {f"PSU{i}": 1 for i in range(1, 6)}
    failed_one = {**five, "PSU4": 0}
    snap = snapshot(
        shelf("s1", 18640.0, failed_one, {"PSU1": 4510.0, "PSU2": 4490.0, "PSU3": 4520.0,
                                          "PSU4": 0.0, "PSU5": 4480.0}),
        shelf("s2", 12000.0, five, None))
    assert snap.racks["r1"].power_w == 30640.0 and snap.racks["r1"].feeds == {"A": 18640.0,
                                                                             "B": 12000.0}
    s1, s2 = snap.shelves["s1"], snap.shelves["s2"]
    assert (s1.installed, s1.healthy, s1.capacity_w, s1.n1_capacity_w) == (5, 4, 22000, 16500)
    assert s1.load_w == 18000.0  # the supplies' output, not the shelf input
    assert s1.carries_one_more_failure is False
    # No per-supply output: the input power stands in for the load (larger: errs safe).
    assert s2.load_w == 12000.0 and s2.n1_capacity_w == 22000 and s2.carries_one_more_failure


def test_unknown_capacity_or_stale_shelf_gives_no_verdict() -> None:
    result = shelf("s1", 1000.0, {"PSU1": 1, "PSU2": 1}, None)
    values = dict(result.values, supply_capacity_w={"PSU1": 5500.0})  # PSU2's is unreadable
    snap = snapshot(PollResult(device="s1", time=NOW - 1, duration=0.1, values=values))
    assert snap.shelves["s1"].healthy == 2 and snap.shelves["s1"].n1_capacity_w is None
    assert snap.shelves["s1"].carries_one_more_failure is None
    assert snap.shelves["s2"].installed is None  # never polled
    assert snap.racks["r1"].power_w is None  # a rack total needs both shelves


def test_shelf_series_in_prometheus_influx_and_mqtt() -> None:
    snap = snapshot(shelf("s1", 18640.0, {"PSU1": 1, "PSU2": 1, "PSU3": 0}, None),
                    shelf("s2", 1000.0, {"PSU1": 1, "PSU2": 1}, None))
    pub = Published(site=SITE, snapshot=snap)
    series = {(s.name, tuple(sorted(s.labels.items()))): s.value
              for m in render(pub) for s in m.samples}
    key = (("rack", "r1"), ("shelf", "s1"), ("site", "t"))
    assert series[("dcim_shelf_redundant", key)] == 0.0
    assert series[("dcim_shelf_supplies_installed", key)] == 3.0
    assert series[("dcim_shelf_n1_capacity_watts", key)] == 5500.0
    assert series[("dcim_shelf_supply_healthy", (("shelf", "s1"), ("site", "t"),
                                                 ("supply", "PSU3")))] == 0.0
    assert series[("dcim_shelf_power_watts", (("shelf", "s1"), ("site", "t")))] == 18640.0
    lines = {e.measurement: e for e in snapshot_entities(pub) if e.tags.get("shelf") == "s1"}
    assert lines["dcim_shelf"].fields["redundant"] == 0
    messages = {m.topic: m.payload for m in state_messages(pub, "dcim")}
    assert messages["dcim/shelves/s1"]["supplies_healthy"] == 2
    events = EventTracker().events(pub, "dcim")
    assert [(e.topic, e.payload["shelf"]) for e in events] == [
        ("dcim/events/shelf_redundancy_lost", "s1")]


def test_the_simulator_fails_a_shelf_supply_through_the_control_route() -> None:
    world = World(presets.build("hall-18mw", 1), 1, shipped_registry(), NOW, frozen=True)
    routed = route("POST", "/shelves/r75-shelf-2/supplies/PSU6/fail", b"")
    assert routed is not None
    action = routed[1]
    assert world.apply(action) == {"device": "r75-shelf-2", "supply": "PSU6", "failed": True}
    points = world.device_view("r75-shelf-2")["points"]
    assert points["supply_healthy"]["PSU6"] == 0 and points["supply_power_w"]["PSU6"] == 0
    with pytest.raises(ActionError, match="unknown supply"):
        world.apply({"action": "supply-fail", "device": "r75-shelf-2", "supply": "PSU9"})
    with pytest.raises(ActionError, match="not on Redfish"):
        world.apply({"action": "fail", "device": "r01-pdu-a", "mode": "html"})
