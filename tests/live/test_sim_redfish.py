"""The simulator's Redfish services (dcim/sim/redfish.py) read by the real driver over HTTP and
HTTPS on loopback: sessions, $expand, one service per rack of shelves, and every fault the
control API injects (supply failed, leak, slow, 401, 500, HTML instead of JSON)."""

from __future__ import annotations

import asyncio
import ssl
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from support.daemon_process import DaemonProcess
from support.profiles import shipped_registry
from support.servers import wait_until
from support.tls import make_ca_and_server_cert

from dcim.compute import compute
from dcim.drivers.poller import Poller
from dcim.readings import PollResult
from dcim.sim import presets, siteconfig
from dcim.sim.agents import Agents, Endpoint
from dcim.sim.child import SimulatorProcess
from dcim.sim.world import World
from dcim.site import Site
from dcim.state import latest

REGISTRY = shipped_registry()
SHELVES = [f"r76-shelf-{n}" for n in range(1, 9)]


@dataclass
class Hall:
    world: World
    agents: Agents
    site: Site
    poller: Poller

    async def poll(self, *ids: str) -> dict[str, PollResult]:
        results = await asyncio.gather(*(self.poller.poll(self.site.devices[i]) for i in ids))
        return {r.device: r for r in results}


async def _hall(tls: tuple[Path, Path, Path] | None = None) -> Hall:
    site = presets.build("hall-18mw", 5)
    world = World(site, 5, REGISTRY, time.time(), frozen=True)
    context = None
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(tls[1], tls[2])
    agents = Agents(world, tls=context)
    redfish = [d for d in site.devices if REGISTRY[d.profile].protocol == "redfish"]
    await agents.start(redfish)
    # Only the Redfish devices are served here; the others' config entries are never polled.
    endpoints = {d.id: agents.endpoints.get(d.id, Endpoint("127.0.0.1", 9)) for d in site.devices}
    text = siteconfig.render(site, endpoints, REGISTRY, redfish_ca_file=tls[0] if tls else None)
    return Hall(world, agents, siteconfig.check(text, REGISTRY), Poller())


@pytest.fixture
async def hall() -> AsyncIterator[Hall]:
    h = await _hall()
    yield h
    await h.poller.close()
    await h.agents.close()


async def test_shelves_and_cdu_read_the_simulator_truth(hall: Hall) -> None:
    results = await hall.poll(*SHELVES, "cdu-12")
    assert all(r.up and not r.errors for r in results.values()), results
    truth = hall.world.truth()
    rack = sum(float(results[s].values["power_w"]) for s in SHELVES)  # type: ignore[arg-type]
    assert rack == pytest.approx(truth["racks"]["r76"], abs=8 * 0.001)
    assert results["cdu-12"].values["flow_lpm"] == pytest.approx(
        truth["cdus"]["cdu-12"]["flow_lpm"], abs=0.001)
    # One service (the rack's) for its eight shelves: one login, collections expanded.
    service = next(s for s in hall.agents.redfish if "r76-shelf-1" in s.devices)
    assert len(service.tokens) == 1
    # per shelf: itself, Metrics, Mains and PowerSupplies (expanded), six supply Metrics
    assert service.requests == 1 + 8 * 10
    await hall.poller.close()
    assert service.tokens == set()  # the session was deleted at shutdown


async def test_supply_failure_and_leak_reach_the_points_and_compute(hall: Hall) -> None:
    hall.world.apply({"action": "supply-fail", "device": "r76-shelf-2", "supply": "PSU3"})
    hall.world.apply({"action": "supply-fail", "device": "r76-shelf-2", "supply": "PSU4"})
    hall.world.apply({"action": "load", "rack": "r76", "kw": 185})
    hall.world.apply({"action": "leak", "cdu": "cdu-12"})
    results = await hall.poll(*SHELVES, "cdu-12")
    healthy = results["r76-shelf-2"].values["supply_healthy"]
    assert isinstance(healthy, dict) and healthy["PSU3"] == 0 and sum(healthy.values()) == 4
    assert results["cdu-12"].values["leak"] == 1
    snap = compute(hall.site, latest(results.values()), time.time())
    shelf = snap.shelves["r76-shelf-2"]
    # 185 kW over 8 shelves is ~23 kW each; 3 x 5.5 kW left after one more failure is not enough
    assert (shelf.installed, shelf.healthy) == (6, 4)
    assert shelf.carries_one_more_failure is False
    assert snap.shelves["r76-shelf-1"].carries_one_more_failure is True
    assert snap.racks["r76"].power_w == pytest.approx(185_000, abs=0.01)
    assert snap.cdus["cdu-12"].leak is True


@pytest.mark.parametrize(("mode", "kind"), [
    ("unauthorized", "auth"), ("http500", "http_status"), ("html", "not_json"),
    ("garbage", "not_json"), ("slow", "timeout")])
async def test_faults_mark_only_that_shelf_down(hall: Hall, mode: str, kind: str) -> None:
    hall.world.apply({"action": "fail", "device": "r76-shelf-3", "mode": mode})
    results = await hall.poll("r76-shelf-3", "r76-shelf-4")
    assert not results["r76-shelf-3"].up and results["r76-shelf-3"].error_kind == kind
    assert results["r76-shelf-4"].up  # same service, another resource
    hall.world.apply({"action": "recover", "device": "r76-shelf-3"})
    assert (await hall.poll("r76-shelf-3"))["r76-shelf-3"].up


async def test_https_with_the_site_ca(tmp_path: Path) -> None:
    h = await _hall(make_ca_and_server_cert(tmp_path))
    try:
        assert h.site.devices["cdu-12"].redfish.tls_ca_file is not None  # type: ignore[union-attr]
        results = await h.poll("r76-shelf-1", "cdu-12")
        assert all(r.up for r in results.values()), results
    finally:
        await h.poller.close()
        await h.agents.close()


# --- the whole chain: `dcim simulate` and `dcim run` as processes, the control API ---------------


def test_daemon_rack_kw_and_pue_on_a_mixed_hall_equal_the_truth(tmp_path: Path) -> None:
    """hall-18mw mixes SNMP PDUs (r01-r72) and Redfish shelves (r73-r76, here over HTTPS with
    the site's CA): the daemon's rack kW and PUE equal the simulator's truth; failed supplies
    reach dcim_shelf_redundant."""
    ca, cert, key = make_ca_and_server_cert(tmp_path)
    sim = SimulatorProcess.start("hall-18mw", tmp_path / "hall.yaml", seed=3, extra=(
        "--frozen", "--redfish-cert", str(cert), "--redfish-key", str(key), "--redfish-ca", str(ca)))
    assert f"tls_ca_file: {ca}" in sim.config.read_text()
    (tmp_path / "dcim").mkdir()
    daemon = DaemonProcess(tmp_path / "dcim", sim.config,
                           polling={"interval": "3s", "timeout": "1s", "retries": 1,
                                    "max_age": "10s"})
    try:
        daemon.start()
        truth = sim.get("/truth")

        def complete() -> dict[str, float] | None:
            m = daemon.metrics()
            racks = [m.get(f'dcim_rack_power_watts{{site="sim-hall-18mw",rack="{r}",hall="h1",'
                           f'row="d",tenant=""}}') for r in ("r73", "r76")]
            return m if "dcim_pue_ratio" in m and all(v is not None for v in racks) else None

        m = wait_until(complete, 60, what="PUE and the shelf racks' power")
        # the SNMP PDUs report whole watts (and amps to 0.1 A): the same 1e-4 as the tiny site
        assert m["dcim_pue_ratio"] == pytest.approx(truth["pue"], rel=1e-4)
        rack_series = {k: v for k, v in m.items() if k.startswith("dcim_rack_power_watts{")}
        assert len(rack_series) == 76
        for key, value in rack_series.items():
            rack = key.split('rack="')[1].split('"')[0]
            assert value == pytest.approx(truth["racks"][rack], rel=1e-4), rack
        assert m['dcim_shelf_redundant{site="sim-hall-18mw",shelf="r76-shelf-2",rack="r76"}'] == 1

        sim.post("/racks/r76/load", {"kw": 185})
        for supply in ("PSU3", "PSU4"):
            sim.post(f"/shelves/r76-shelf-2/supplies/{supply}/fail")
        key = 'dcim_shelf_supplies_healthy{site="sim-hall-18mw",shelf="r76-shelf-2",rack="r76"}'
        m = wait_until(lambda: (d := daemon.metrics()).get(key) == 4 and d, 30,
                       what="the failed supplies in /metrics")
        assert m['dcim_shelf_redundant{site="sim-hall-18mw",shelf="r76-shelf-2",rack="r76"}'] == 0
    finally:
        daemon.stop()
        sim.stop()
