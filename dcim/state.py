"""What compute knows of a device: its latest poll and when it last succeeded (frozen).

The daemon's per-device coordinators (dcim/daemon/coordinator.py) keep one DeviceState each
and hand compute a read-only mapping of them; one-shot commands fold their results with
`latest`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from dcim.readings import PollResult


@dataclass(frozen=True, slots=True)
class DeviceState:
    """One device's latest poll, and the time of its latest successful one."""

    last: PollResult
    last_success: float | None


def advance(previous: DeviceState | None, result: PollResult) -> DeviceState:
    """The state after one more poll: a failed poll keeps the previous success time."""
    if result.up:
        return DeviceState(result, result.time)
    return DeviceState(result, previous.last_success if previous else None)


def latest(results: Iterable[PollResult]) -> Mapping[str, DeviceState]:
    """Fold polls (oldest first) into the read-only per-device view compute takes."""
    states: dict[str, DeviceState] = {}
    for result in results:
        states[result.device] = advance(states.get(result.device), result)
    return MappingProxyType(states)
