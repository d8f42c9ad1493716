"""A small site and snapshots built from real profiles, for the InfluxDB and MQTT sink tests."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dcim.compute import compute
from dcim.compute.snapshot import Published
from dcim.config import parse_config
from dcim.profile import ProfileRegistry
from dcim.readings import PointValue, PollResult
from dcim.site import Site, build_site
from dcim.state import latest

REGISTRY = ProfileRegistry.load()

SITE_CONFIG: dict[str, Any] = {
    "site": {"name": "hall-1", "rack_max_kw": 190, "pue_target": 1.25},
    "polling": {"interval": "10s", "max_age": "30s"},
    "racks": [{"id": "r01", "hall": "h1", "row": "a", "tenant": "acme"},
              {"id": "r02", "hall": "h1", "row": "a", "cap_kw": 150}],
    "devices": [
        {"id": "r01-pdu-a", "profile": "raritan-px", "host": "h", "rack": "r01", "feed": "A"},
        {"id": "r01-pdu-b", "profile": "raritan-px", "host": "h", "rack": "r01", "feed": "B"},
        {"id": "r02-pdu-a", "profile": "raritan-px", "host": "h", "rack": "r02", "feed": "A"},
        {"id": "r02-pdu-b", "profile": "raritan-px", "host": "h", "rack": "r02", "feed": "B"},
        {"id": "cdu-1", "profile": "generic-cdu", "host": "h", "port": 502, "serves": ["r01"]},
        {"id": "cdu-2", "profile": "generic-cdu", "host": "h", "port": 502,
         "serves": ["r01", "r02"]},
        {"id": "main-1", "profile": "schneider-pm5500", "host": "h", "port": 502},
    ],
    "pue": {"facility": ["main-1"], "it": "racks"},
}


def make_site(extra: Mapping[str, Any] | None = None) -> Site:
    """The test site, optionally with more top-level config (e.g. sinks)."""
    return build_site(parse_config({**SITE_CONFIG, **(extra or {})}), REGISTRY)


def cdu_values(leak: float = 0.0) -> dict[str, PointValue]:
    """A plausible CDU reading."""
    return {"supply_temp_c": 30.0, "return_temp_c": 40.0, "flow_lpm": 300.0,
            "diff_pressure_kpa": 80.0, "pump_power_w": 2000.0, "leak": leak}


class World:
    """Keeps the readings it was fed and computes Published snapshots, like the daemon."""

    def __init__(self, site: Site | None = None):
        self.site = site or make_site()
        self.results: list[PollResult] = []

    def poll(self, device: str, t: float, values: Mapping[str, PointValue]) -> None:
        """Record one successful poll."""
        self.results.append(PollResult(device=device, time=t, duration=0.01, values=dict(values)))

    def fail(self, device: str, t: float) -> None:
        """Record one failed poll."""
        self.results.append(PollResult(device=device, time=t, duration=2.0, error="timeout",
                                       error_kind="timeout"))

    def poll_all(self, t: float, rack_kw: float = 60.0, leak: float = 0.0) -> None:
        """Every device answers at t; each PDU carries half of its rack."""
        for dev in self.site.devices.values():
            if dev.kind == "pdu":
                self.poll(dev.id, t, {"power_w": rack_kw * 500.0,
                                      "current_a": {"L1": 10.0, "L2": 11.0, "L3": 12.0}})
            elif dev.kind == "cdu":
                self.poll(dev.id, t, cdu_values(leak))
            elif dev.kind == "meter":
                self.poll(dev.id, t, {"power_w": rack_kw * 1000.0 * 2 * 1.25})

    def published(self, now: float) -> Published:
        """The snapshot at now."""
        return Published(site=self.site, snapshot=compute(self.site, latest(self.results), now))
