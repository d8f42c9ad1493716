"""The scheduler: one task per device, each on its own interval with jitter and a deadline.

A slow or dead device only delays itself. A device that keeps failing backs off. Its first
failure is logged once and its recovery logged (no log flood), like Home Assistant's update
coordinator; the rest is counted in Health and exported. No exception ends a device's task:
whatever escapes a poll (a bug, an arithmetic error on a hostile value) becomes a failed poll
of kind "internal", logged once with its traceback, and the device is polled again on schedule.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable

from dcim.backoff import MAX_BACKOFF_S
from dcim.drivers.poller import Poller
from dcim.health import DeviceHealth, Health
from dcim.readings import PollResult, failed
from dcim.reasons import ErrorKind
from dcim.site import DeviceSpec
from dcim.tasks import cancel_and_wait

log = logging.getLogger("dcim.scheduler")


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


def next_delay(device: DeviceSpec, failures: int) -> float:
    """Interval to the next poll; doubles per consecutive failure beyond the second."""
    if failures < 2:
        return device.interval
    return min(device.interval * 2.0 ** (failures - 1), max(MAX_BACKOFF_S, device.interval))


class Scheduler:
    """Runs one polling task per device and hands every result to `on_result`."""

    def __init__(self, poller: Poller, on_result: Callable[[DeviceSpec, PollResult], None],
                 health: Health, *, seed: int | None = None,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        self._poller = poller
        self._on_result = on_result
        self._health = health
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._random = random.Random(seed)
        self._sleep = sleep
        # (device, where) pairs whose traceback was logged since the device last succeeded.
        self._reported: set[tuple[str, str]] = set()

    def set_devices(self, devices: list[DeviceSpec]) -> None:
        """Start tasks for new or changed devices and stop tasks for removed ones."""
        wanted = {d.id: d for d in devices}
        for device_id in list(self._tasks):
            task = self._tasks[device_id]
            spec = getattr(task, "dcim_spec", None)
            if device_id not in wanted or spec != wanted[device_id]:
                # Also ends at its next turn if the cancellation is lost (see _run).
                task.cancel()
                del self._tasks[device_id]
        for device in devices:
            if device.id not in self._tasks:
                task = asyncio.create_task(self._run(device), name=f"poll:{device.id}")
                task.dcim_spec = device  # type: ignore[attr-defined]
                self._tasks[device.id] = task

    async def stop(self) -> None:
        """Cancel every device task and wait for them to finish."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        await cancel_and_wait(tasks, timeout=None)

    async def _run(self, device: DeviceSpec) -> None:
        health = self._health.device(device.id)
        # First poll within a second (a fresh start has data at once), then a random phase
        # spreads the devices over the interval so the site is not polled in one burst.
        await self._sleep(self._random.uniform(0, min(1.0, device.interval)))
        loop = asyncio.get_running_loop()
        me = asyncio.current_task()
        next_at: float | None = None
        # A task that was replaced or stopped ends here even if its cancellation was lost.
        while self._tasks.get(device.id) is me:
            result = await self._poll(device)
            self._record(device, health, result)
            try:
                self._on_result(device, result)
            except Exception as exc:  # a bug must not end the device's task
                self._report(device, "handling its result", exc)
            if result.up:
                self._reported = {r for r in self._reported if r[0] != device.id}
            now = loop.time()
            if next_at is None:
                next_at = now + self._random.uniform(0, device.interval)
                await self._sleep(next_at - now)
                continue
            next_at += next_delay(device, health.failures)
            if now > next_at:
                # The poll overran its slot: skip the missed slots instead of bursting.
                health.overruns += 1
                missed = (now - next_at) // device.interval + 1
                next_at += missed * device.interval
            await self._sleep(next_at - now)

    async def _poll(self, device: DeviceSpec) -> PollResult:
        """One poll; anything it raises is a failed poll of kind "internal", never the task's end."""
        started = time.monotonic()
        try:
            return await self._poller.poll(device, deadline=deadline_for(device))
        except Exception as exc:  # the one guard around every poll
            self._report(device, "polling", exc)
            return failed(device.id, time.time(), time.monotonic() - started, ErrorKind.INTERNAL,
                          f"internal error: {type(exc).__name__}: {exc}")

    def _report(self, device: DeviceSpec, where: str, exc: Exception) -> None:
        """Log an unexpected exception with its traceback once until the device next succeeds."""
        if (device.id, where) in self._reported:
            log.debug("%s: %s raised again: %r", device.id, where, exc)
            return
        self._reported.add((device.id, where))
        log.error("%s: %s raised %s (a dcim bug; the device is polled again on schedule)",
                  device.id, where, type(exc).__name__, exc_info=exc)

    def _record(self, device: DeviceSpec, health: DeviceHealth, result: PollResult) -> None:
        health.polls += 1
        self._health.last_progress = time.monotonic()
        for point, err in result.errors.items():
            # A point the device does not have is not an invalid reading (Reason.counted).
            if err.reason.counted:
                key = (point, err.reason)
                health.invalid[key] = health.invalid.get(key, 0) + 1
        if result.up:
            if health.failures:
                down_for = time.time() - (health.down_since or time.time())
                log.info("%s recovered after %d failed polls (%.0f s)", device.id,
                         health.failures, down_for)
            health.failures = 0
            health.down_since = None
            return
        kind = result.error_kind or ErrorKind.PROTOCOL
        health.errors[kind] = health.errors.get(kind, 0) + 1
        health.failures += 1
        if health.failures == 1:
            health.down_since = time.time()
            log.warning("%s (%s %s:%d) down: %s", device.id, device.profile.name, device.host,
                        device.port, result.error)
        else:
            log.debug("%s still down (%d): %s", device.id, health.failures, result.error)
