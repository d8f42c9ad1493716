"""The latest-state store: the most recent poll of each device, and its recent history."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dcim.readings import PollResult


@dataclass(frozen=True, slots=True)
class DeviceState:
    """What is known about one device: its latest poll and when it last succeeded."""

    last: PollResult
    last_success: float | None
    failures: int  # consecutive failed polls


class StateStore:
    """Latest poll per device; written by the scheduler, read (as a frozen view) by compute."""

    def __init__(self) -> None:
        self._state: dict[str, DeviceState] = {}

    def update(self, result: PollResult) -> DeviceState:
        """Record a poll and return the device's new state."""
        previous = self._state.get(result.device)
        if result.up:
            state = DeviceState(result, result.time, 0)
        else:
            state = DeviceState(
                result,
                previous.last_success if previous else None,
                (previous.failures if previous else 0) + 1,
            )
        self._state[result.device] = state
        return state

    def forget(self, keep: set[str]) -> None:
        """Drop devices no longer in the site (after a config reload)."""
        for device in set(self._state) - keep:
            del self._state[device]

    def view(self) -> Mapping[str, DeviceState]:
        """A read-only copy for compute: later polls do not change it."""
        return MappingProxyType(dict(self._state))
