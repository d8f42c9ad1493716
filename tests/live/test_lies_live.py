"""`dcim run` on the tiny preset while simulated devices lie (dcim/sim/lies.py): each lie is
refused with its reason in dcim_invalid_readings_total, the totals that need the refused point
are withheld and the others still published, and an energy counter glitch never makes the
energy ledger jump (compared with the simulator's own counter)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from support.daemon_process import DaemonProcess, Metrics, sample, total
from support.servers import wait_until

from dcim.sim.child import SimulatorProcess

J_PER_WH = 3600.0



@pytest.fixture
def site(tmp_path: Path, tiny: SimulatorProcess) -> Iterator[tuple[SimulatorProcess, DaemonProcess]]:
    workdir = tmp_path / "dcim"
    workdir.mkdir()
    daemon = DaemonProcess(workdir, tiny.config, polling={
        "interval": "2s", "timeout": "1s", "retries": 0, "max_age": "5s"})
    try:
        daemon.start()
        yield tiny, daemon
    finally:
        daemon.close()


def _scrape_until(daemon: DaemonProcess, check: Callable[[Metrics], bool], what: str) -> Metrics:
    def once() -> Metrics | None:
        m = daemon.metrics()
        assert isinstance(m, Metrics)
        return m if check(m) else None
    return wait_until(once, timeout=60, interval=1, what=what)


def test_lies_are_refused_and_withhold_only_what_needs_them(
        site: tuple[SimulatorProcess, DaemonProcess]) -> None:
    sim, daemon = site
    _scrape_until(daemon, lambda m: "dcim_pue_ratio" in m
                  and sample(m, "dcim_rack_power_watts", 'rack="r02"') is not None,
                  "PUE and both racks published")

    # r01-pdu-a's voltage rows read 10x: the voltage is refused, its power still counts.
    sim.post("/devices/r01-pdu-a/fail", {"mode": "tenfold-voltage"})
    m = _scrape_until(daemon, lambda m: (sample(
        m, "dcim_invalid_readings_total", 'device="r01-pdu-a"', 'point="voltage_v"',
        'reason="out_of_range"') or 0) >= 2, "the tenfold voltage refused as out_of_range")
    assert sample(m, "dcim_rack_power_watts", 'rack="r01"') is not None
    assert "dcim_pue_ratio" in m
    assert sample(m, "dcim_device_up", 'device="r01-pdu-a"') == 1.0
    sim.post("/devices/r01-pdu-a/recover")

    # r02-pdu-b's power reads 10x: refused as implausible, rack r02 and PUE (IT from racks)
    # withheld, never a number ten times too high; rack r01 unaffected. A light rack, so ten
    # times its power stays within range (above twice the rack cap it is out_of_range) and only
    # the check against volts x amps catches it.
    sim.post("/racks/r02/load", {"kw": 15})
    sim.post("/devices/r02-pdu-b/fail", {"mode": "tenfold-power"})
    m = _scrape_until(daemon, lambda m: (sample(
        m, "dcim_invalid_readings_total", 'device="r02-pdu-b"', 'point="power_w"',
        'reason="implausible"') or 0) >= 2, "the tenfold power refused as implausible")
    assert sample(m, "dcim_rack_power_watts", 'rack="r02"') is None
    assert "dcim_pue_ratio" not in m
    assert sample(m, "dcim_rack_power_watts", 'rack="r01"') is not None
    sim.post("/devices/r02-pdu-b/recover")
    _scrape_until(daemon, lambda m: "dcim_pue_ratio" in m, "PUE published again")


def test_an_energy_counter_glitch_never_makes_the_ledger_jump(
        site: tuple[SimulatorProcess, DaemonProcess]) -> None:
    sim, daemon = site

    def credited(m: Metrics) -> bool:
        return total(m, "dcim_device_energy_joules_total", 'device="main-1"') > 0
    before = _scrape_until(daemon, credited, "main-1's energy counted")
    truth_before = sim.get("/devices/main-1")["model"]["energy_wh"]
    polls = sample(before, "dcim_device_polls_total", 'device="main-1"')

    # The meter reads 0 for a few polls, then its true count again: a glitch, not a reset.
    sim.post("/devices/main-1/fail", {"mode": "energy-glitch"})
    _scrape_until(daemon, lambda m: (sample(m, "dcim_device_polls_total", 'device="main-1"')
                                     or 0) >= (polls or 0) + 3, "three polls of the glitch")
    sim.post("/devices/main-1/recover")
    after = _scrape_until(daemon, lambda m: (sample(
        m, "dcim_device_energy_counter_refused_total", 'device="main-1"', 'reason="glitch"')
        or 0) >= 1, "the glitch counted")
    truth_after = sim.get("/devices/main-1")["model"]["energy_wh"]

    truth_j = (truth_after - truth_before) * J_PER_WH
    power_w = sim.get("/devices/main-1")["model"]["power_w"]
    # Scrapes and the simulator's clock differ by up to a couple of poll intervals; a jump by
    # the meter's lifetime (4.5 GWh) is eight orders of magnitude more than that slack.
    slack_j = power_w * 3 * 2.0
    for name, labels in (("dcim_device_energy_joules_total", ('device="main-1"',)),
                         ("dcim_facility_energy_joules_total", ())):
        was, now = total(before, name, *labels), total(after, name, *labels)
        assert was > 0 and now >= was, (name, was, now)
        assert now - was <= truth_j + slack_j, (name, now - was, truth_j)
    assert sample(after, "dcim_device_energy_counter_resets_total", 'device="main-1"') == 0
