"""Sources of readings other than polling: a BMS on the MQTT bus (see bms.py).

The daemon wires them in with two calls (see make_sources and owned_devices): a source hands
every reading to an on_result callback (the daemon records it in the device's coordinator, as
it records a poll), and the devices it owns are not polled. Sources never import sinks
(tests/unit/test_layers.py checks it).
"""

from __future__ import annotations

from dcim.interfaces import OnResult, Source
from dcim.site import Site
from dcim.sources.bms import BmsSource

__all__ = ["BmsSource", "make_sources", "owned_devices"]


def make_sources(site: Site, on_result: OnResult) -> list[Source]:
    """The sources the config asks for (sources.bms)."""
    bms = site.sources.bms
    return [] if bms is None else [BmsSource(bms, site, on_result)]


def owned_devices(site: Site) -> frozenset[str]:
    """Devices whose readings come from a source: the scheduler must not poll them."""
    bms = site.sources.bms
    return frozenset() if bms is None else bms.devices
