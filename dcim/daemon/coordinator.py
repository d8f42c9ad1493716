"""One coordinator per device: the one place a device's results are recorded.

Shaped like Home Assistant's DataUpdateCoordinator. A coordinator holds its device's spec, the
latest result and the time of the last success (as the frozen DeviceState compute reads), the
last error and its kind, the consecutive failures and since when the device is down, and when
its next poll is due. It logs a failure once and the recovery once (no log flood), and counts
polls, failed polls by kind, rejected readings by point and reason, and overruns (as the frozen
DeviceHealth the exporters read). Every recorded result goes on to one listener (the daemon's:
energy ledger, "something changed").

The scheduler decides when to poll; a source (the BMS) records readings it was pushed.

No exception ends a device's task: whatever escapes a poll (a bug, an arithmetic error on a
hostile value) becomes a failed poll of kind "internal", and whatever escapes the listener is
logged; each is logged once with its traceback until the device next succeeds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from types import MappingProxyType

from dcim.health import DeviceHealth
from dcim.readings import PollResult, failed
from dcim.reasons import ErrorKind, Reason
from dcim.site import DeviceSpec
from dcim.state import DeviceState, advance

log = logging.getLogger("dcim.coordinator")

PollFn = Callable[[DeviceSpec], Awaitable[PollResult]]
Listener = Callable[[DeviceSpec, PollResult], None]


class DeviceCoordinator:
    """The state, counters and schedule of one device."""

    def __init__(self, spec: DeviceSpec, listener: Listener):
        self.spec = spec
        self._listener = listener
        self.state: DeviceState | None = None
        self.failures = 0  # consecutive failed polls
        self.down_since: float | None = None  # time of the first failed poll of this outage
        self.next_poll: float | None = None  # wall clock; None while not scheduled
        self.polls = 0
        self.errors: dict[ErrorKind, int] = {}
        # (point, reason) -> readings refused, for the reasons that count (Reason.counted).
        self.invalid: dict[tuple[str, Reason], int] = {}
        self.overruns = 0
        # Set when the device left the site: a poll still in flight then records nothing.
        self.retired = False
        self._health: DeviceHealth | None = None
        # Where an exception was logged with its traceback since the device last succeeded.
        self._reported: set[str] = set()

    @property
    def up(self) -> bool:
        """The latest result came from a device that answered."""
        return self.state is not None and self.state.last.up

    @property
    def last_success(self) -> float | None:
        """When the device last answered."""
        return self.state.last_success if self.state else None

    @property
    def last_error(self) -> str | None:
        """What went wrong in the latest poll (None if it succeeded)."""
        return self.state.last.error if self.state else None

    @property
    def last_error_kind(self) -> ErrorKind | None:
        """The kind of that failure (timeout, refused, ...)."""
        return self.state.last.error_kind if self.state else None

    async def refresh(self, poll: PollFn) -> PollResult:
        """Poll the device once, count the poll and record its result; never raises."""
        started = time.monotonic()
        try:
            result = await poll(self.spec)
        except Exception as exc:  # the one guard around every poll
            self._report("polling", exc)
            result = failed(self.spec.id, time.time(), time.monotonic() - started,
                            ErrorKind.INTERNAL, f"internal error: {type(exc).__name__}: {exc}")
        if not self.retired:
            self._count(result)
        self.record(result)
        return result

    def record(self, result: PollResult) -> None:
        """Make `result` the device's latest (from a poll or a source); log down and recovery."""
        if self.retired:
            return
        self.state = advance(self.state, result)
        spec = self.spec
        if result.up:
            if self.failures:
                down_for = result.time - (self.down_since or result.time)
                log.info("%s recovered after %d failed polls (%.0f s)", spec.id, self.failures,
                         down_for)
            self.failures = 0
            self.down_since = None
            self._reported.clear()
        else:
            self.failures += 1
            if self.failures == 1:
                self.down_since = result.time
                log.warning("%s (%s %s:%d) down: %s", spec.id, spec.profile.name, spec.host,
                            spec.port, result.error)
            else:
                log.debug("%s still down (%d): %s", spec.id, self.failures, result.error)
        self._health = None
        try:
            self._listener(spec, result)
        except Exception as exc:  # a bug must not end the device's task
            self._report("handling its result", exc)

    def _report(self, where: str, exc: Exception) -> None:
        """Log an unexpected exception with its traceback once until the device next succeeds."""
        if where in self._reported:
            log.debug("%s: %s raised again: %r", self.spec.id, where, exc)
            return
        self._reported.add(where)
        log.error("%s: %s raised %s (a dcim bug; the device is polled again on schedule)",
                  self.spec.id, where, type(exc).__name__, exc_info=exc)

    def _count(self, result: PollResult) -> None:
        self.polls += 1
        for point, err in result.errors.items():
            # A point the device does not have is not an invalid reading.
            if err.reason.counted:
                key = (point, err.reason)
                self.invalid[key] = self.invalid.get(key, 0) + 1
        if not result.up:
            kind = result.error_kind or ErrorKind.PROTOCOL
            self.errors[kind] = self.errors.get(kind, 0) + 1

    def overran(self) -> None:
        """A poll ran past its slot (the scheduler skips the missed slots)."""
        self.overruns += 1
        self._health = None

    def schedule(self, when: float | None) -> None:
        """Set the wall-clock time of the next poll (None: no longer polled)."""
        self.next_poll = when
        self._health = None

    def health(self) -> DeviceHealth:
        """A frozen copy of the counters (rebuilt only after a change)."""
        if self._health is None:
            self._health = DeviceHealth(
                polls=self.polls, errors=MappingProxyType(dict(self.errors)),
                invalid=MappingProxyType(dict(self.invalid)), overruns=self.overruns,
                next_poll=self.next_poll)
        return self._health


class Coordinators:
    """The coordinator of every device of the site, by device id."""

    def __init__(self, listener: Listener):
        self._listener = listener
        self._by_id: dict[str, DeviceCoordinator] = {}

    def sync(self, devices: Iterable[DeviceSpec]) -> None:
        """Match the site's devices (at start and after a reload).

        A device that stays keeps its coordinator (state and counters) with its new spec; a
        removed device's coordinator is retired.
        """
        wanted = {d.id: d for d in devices}
        for device_id in set(self._by_id) - set(wanted):
            self._by_id.pop(device_id).retired = True
        for device_id, spec in wanted.items():
            coordinator = self._by_id.get(device_id)
            if coordinator is None:
                self._by_id[device_id] = DeviceCoordinator(spec, self._listener)
            else:
                coordinator.spec = spec

    def __getitem__(self, device_id: str) -> DeviceCoordinator:
        return self._by_id[device_id]

    def __iter__(self) -> Iterator[DeviceCoordinator]:
        return iter(list(self._by_id.values()))

    def record(self, device: DeviceSpec, result: PollResult) -> None:
        """A reading a source was pushed: recorded like a poll, not counted as one."""
        coordinator = self._by_id.get(device.id)
        if coordinator is not None:
            coordinator.record(result)

    def states(self) -> Mapping[str, DeviceState]:
        """The read-only view compute takes: later results do not change it."""
        return MappingProxyType({i: c.state for i, c in self._by_id.items() if c.state})

    def health(self) -> Mapping[str, DeviceHealth]:
        """Frozen counters of every polled device (a source's devices are not polled)."""
        return MappingProxyType({i: c.health() for i, c in self._by_id.items()
                                 if c.polls or c.next_poll is not None})
