"""Self-health counters of the poller, written by the scheduler and read by the sinks."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from dcim.reasons import ErrorKind, Reason


@dataclass
class DeviceHealth:
    """Counters for one device, exported as dcim_device_* series."""

    polls: int = 0
    errors: dict[ErrorKind, int] = field(default_factory=dict)
    # (point, reason) -> readings refused; reasons that count only (Reason.counted).
    invalid: dict[tuple[str, Reason], int] = field(default_factory=dict)
    overruns: int = 0
    down_since: float | None = None
    failures: int = 0


@dataclass
class Health:
    """Self-health of the poller, read by the Prometheus exporter."""

    devices: dict[str, DeviceHealth] = field(default_factory=dict)
    last_progress: float = field(default_factory=time.monotonic)

    def device(self, device_id: str) -> DeviceHealth:
        """The counters of one device (created on first use)."""
        return self.devices.setdefault(device_id, DeviceHealth())
