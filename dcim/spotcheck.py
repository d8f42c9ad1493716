"""One-shot polling for the CLI: poll a set of devices once, concurrently, and compute."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

from dcim.compute import Snapshot, compute
from dcim.drivers.poller import Poller
from dcim.readings import PollResult
from dcim.site import DeviceSpec, Site
from dcim.state import latest


async def poll_once(site: Site, devices: Iterable[DeviceSpec]) -> list[PollResult]:
    """Poll the given devices once, all at the same time."""
    poller = Poller(site.max_in_flight)
    try:
        return list(await asyncio.gather(*(poller.poll(d) for d in devices)))
    finally:
        await poller.close()


async def spot_check(site: Site) -> Snapshot:
    """Poll what PUE and rack power need, once, and compute a Snapshot from it."""
    wanted = dict.fromkeys(site.pue.devices if site.pue else ())
    for rack in site.racks.values():
        wanted.update(dict.fromkeys(rack.devices))
    results = await poll_once(site, site.devices_for(tuple(wanted)))
    return compute(site, latest(results), time.time())
