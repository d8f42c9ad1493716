"""What a poll returns: scaled point values, per-point errors and the raw wire values."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dcim.reasons import ErrorKind, PointError

# A point is one number, or one number per row (phase, outlet, daisy-chained unit) keyed by row.
PointValue = float | Mapping[str, float]


@dataclass(frozen=True, slots=True)
class PollResult:
    """One poll of one device."""

    device: str
    time: float
    duration: float
    values: Mapping[str, PointValue] = field(default_factory=dict)
    errors: Mapping[str, PointError] = field(default_factory=dict)
    raw: Mapping[str, object] = field(default_factory=dict)
    # Set when the device as a whole failed (timeout, refused, garbage): no values at all.
    error: str | None = None
    error_kind: ErrorKind | None = None

    @property
    def up(self) -> bool:
        """The device answered."""
        return self.error is None


def failed(device: str, time: float, duration: float, kind: ErrorKind,
           message: str) -> PollResult:
    """A poll where the device as a whole failed."""
    return PollResult(device=device, time=time, duration=duration, error=message, error_kind=kind)
