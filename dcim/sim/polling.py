"""A snapshot source for the demo: polls every device through dcim's own drivers and compute."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from dcim.compute import Snapshot, compute
from dcim.drivers.poller import Poller
from dcim.site import Site
from dcim.state import StateStore


class PollingSource:
    """Keeps the latest Snapshot of a site, polling all its devices on demand or on a timer."""

    def __init__(self, site: Site):
        self.site = site
        self._poller = Poller(site.config.polling.max_in_flight)
        self._store = StateStore()
        self._latest: Snapshot | None = None
        self.poll_seconds: float | None = None

    def latest(self) -> Snapshot | None:
        """The most recent Snapshot (None before the first poll completes)."""
        return self._latest

    async def poll(self) -> Snapshot:
        """Poll every device once, concurrently, and compute a fresh Snapshot."""
        started = time.monotonic()
        results = await asyncio.gather(*(self._poller.poll(d) for d in self.site.devices.values()))
        for result in results:
            self._store.update(result)
        self.poll_seconds = time.monotonic() - started
        self._latest = compute(self.site, self._store.view(), time.time())
        return self._latest

    async def run(self, interval: float, on_poll: Callable[[Snapshot], None] | None = None) -> None:
        """Poll every `interval` seconds until cancelled."""
        while True:
            started = time.monotonic()
            snapshot = await self.poll()
            if on_poll is not None:
                on_poll(snapshot)
            await asyncio.sleep(max(0.0, interval - (time.monotonic() - started)))

    async def close(self) -> None:
        """Release the poller's sockets."""
        await self._poller.close()
