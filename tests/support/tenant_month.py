"""Simulated sites for the tenant tests: their resolved config, and the counters' quantum."""

from __future__ import annotations

from dcim.compute.tenants import ledger_buckets
from dcim.profile import ProfileRegistry
from dcim.sim import siteconfig
from dcim.sim.agents import Endpoint
from dcim.sim.month import MonthReplay
from dcim.sim.topology import SimSite
from dcim.site import DEFAULT_PORTS, Site

REGISTRY = ProfileRegistry.load()


def sim_config(sim: SimSite) -> tuple[str, Site]:
    """The config text the simulator writes for the site (devices on loopback), resolved."""
    endpoints = {d.id: Endpoint("127.0.0.1", DEFAULT_PORTS[REGISTRY[d.profile].protocol])
                 for d in sim.devices}
    text = siteconfig.render(sim, endpoints, REGISTRY)
    return text, siteconfig.check(text, REGISTRY)


def quantum_kwh(replay: MonthReplay, bucket: str) -> float:
    """How far counters quantized to their profile step may lag the truth, for a bucket: a
    step at each end of the period for every device that counts into it."""
    steps = [abs(d.profile.points["energy_wh"].scale) for d in replay.devices
             if bucket in ledger_buckets(replay.site, d.id) and "energy_wh" in d.profile.points]
    return 2 * sum(steps) / 1000 + 1e-6
