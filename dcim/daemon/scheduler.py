"""The scheduler: one task per polled device, each on its own interval with jitter and a deadline.

A slow or dead device only delays itself. A device that fails is retried at its own interval
(no backoff): its recovery shows at the first poll after it answers again. What a poll returns
is recorded by the device's coordinator (dcim/daemon/coordinator.py), which also logs the first
failure and the recovery once each.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import NamedTuple

from dcim.daemon.coordinator import DeviceCoordinator
from dcim.drivers.poller import Poller
from dcim.readings import PollResult
from dcim.site import DeviceSpec
from dcim.tasks import cancel_and_wait

# The second poll of a device comes at least this long after its first (two compute ticks).
SETTLE_S = 2.0
# A poll may use this share of its interval: it must end before the next one is due.
POLL_SHARE = 0.9


def deadline_for(device: DeviceSpec) -> float:
    """How long one poll (all its requests together) may take.

    `timeout` and `retries` apply to each request: they decide whether the device answers.
    A poll makes several requests in turn (sysObjectID, GETs, walks, fallbacks; Modbus blocks
    queued behind the other units of a gateway), so a slow device that answers every one is
    up even when the sum exceeds one request's timeout; only a poll that cannot finish within
    90% of the interval is cut, marked down as "deadline". It is never shorter than one
    request's timeout x attempts, so a silent device fails as "timeout", as configured.
    """
    return max(device.interval * POLL_SHARE, device.timeout * (device.retries + 1) + 0.5)


class _Polling(NamedTuple):
    spec: DeviceSpec  # the spec the task was started with (a change restarts the task)
    coordinator: DeviceCoordinator
    task: asyncio.Task[None]


class Scheduler:
    """Runs one polling task per device coordinator."""

    def __init__(self, poller: Poller, *, seed: int | None = None,
                 clock: Callable[[], float] = time.monotonic,
                 wall_clock: Callable[[], float] = time.time,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self._poller = poller
        self._polling: dict[str, _Polling] = {}
        self._random = random.Random(seed)
        self._clock = clock
        self._wall_clock = wall_clock
        self._sleep = sleep
        # Monotonic time of the latest finished poll: the systemd watchdog's sign of life.
        self.last_progress = clock()

    def set_devices(self, coordinators: Iterable[DeviceCoordinator]) -> None:
        """Start tasks for new or changed devices and stop tasks for the others."""
        wanted = {c.spec.id: c for c in coordinators}
        for device_id, polling in list(self._polling.items()):
            coordinator = wanted.get(device_id)
            if coordinator is None or coordinator is not polling.coordinator \
                    or coordinator.spec != polling.spec:
                # Also ends at its next turn if the cancellation is lost (see _run).
                polling.task.cancel()
                polling.coordinator.schedule(None)
                del self._polling[device_id]
        for device_id, coordinator in wanted.items():
            if device_id not in self._polling:
                task = asyncio.create_task(self._run(coordinator), name=f"poll:{device_id}")
                self._polling[device_id] = _Polling(coordinator.spec, coordinator, task)

    async def stop(self) -> None:
        """Cancel every device task and wait for them to finish."""
        tasks = [p.task for p in self._polling.values()]
        for polling in self._polling.values():
            polling.coordinator.schedule(None)
        self._polling.clear()
        await cancel_and_wait(tasks, timeout=None)

    async def _poll(self, device: DeviceSpec) -> PollResult:
        return await self._poller.poll(device, deadline=deadline_for(device))

    async def _run(self, coordinator: DeviceCoordinator) -> None:
        device = coordinator.spec
        interval = device.interval
        # First poll within a second (a fresh start has data at once), then a random phase
        # spreads the devices over the interval so the site is not polled in one burst.
        first = self._random.uniform(0, min(1.0, interval))
        coordinator.schedule(self._wall_clock() + first)
        await self._sleep(first)
        me = asyncio.current_task()
        next_at: float | None = None
        # A task that was replaced or stopped ends here even if its cancellation was lost.
        while self._runs(device.id, me):
            await coordinator.refresh(self._poll)
            now = self.last_progress = self._clock()
            if not self._runs(device.id, me):
                return
            if next_at is None:
                # Not sooner than SETTLE_S after the first poll: sinks see one result per
                # device per compute tick, and a second result before the first was published
                # would replace it (measured in bench/soak.py: one poll lost on 5 of 203).
                next_at = now + self._random.uniform(min(SETTLE_S, interval / 2), interval)
            else:
                next_at += interval
                if now > next_at:
                    # The poll overran its slot: skip the missed slots instead of bursting.
                    coordinator.overran()
                    next_at += ((now - next_at) // interval + 1) * interval
            coordinator.schedule(self._wall_clock() + next_at - now)
            await self._sleep(next_at - now)

    def _runs(self, device_id: str, task: asyncio.Task[None] | None) -> bool:
        polling = self._polling.get(device_id)
        return polling is not None and polling.task is task
