"""Sources of readings other than polling: a BMS on the MQTT bus (see bms.py).

The daemon wires them in with two calls (see make_sources and owned_devices): a source hands
every reading to the same on_result callback as the scheduler, and the devices it owns are not
polled.
"""

from __future__ import annotations

from collections.abc import Callable

from dcim.readings import PollResult
from dcim.site import DeviceSpec, Site
from dcim.sources.bms import BmsSource

OnResult = Callable[[DeviceSpec, PollResult], None]

__all__ = ["BmsSource", "make_sources", "owned_devices"]


def make_sources(site: Site, on_result: OnResult) -> list[BmsSource]:
    """The sources the config asks for (today: exporters.mqtt.bms)."""
    mqtt = site.config.exporters.mqtt
    if mqtt is None or mqtt.bms is None:
        return []
    return [BmsSource(mqtt, site, on_result)]


def owned_devices(site: Site) -> set[str]:
    """Devices whose readings come from a source: the scheduler must not poll them."""
    mqtt = site.config.exporters.mqtt
    if mqtt is None or mqtt.bms is None:
        return set()
    return {p.device for p in mqtt.bms.points}
