"""The poller's self-health as the exporters read it: frozen per-tick copies, no live state.

The per-device coordinators (dcim/daemon/coordinator.py) own the counters; each tick the daemon
puts these read-only copies into `Published`, so a scrape in another thread never reads
counters while the event loop writes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from dcim.reasons import ErrorKind, Reason
from dcim.snmp.client import ClientStats


@dataclass(frozen=True, slots=True)
class DeviceHealth:
    """One device's poll counters (exported as dcim_device_*)."""

    polls: int = 0
    errors: Mapping[ErrorKind, int] = field(default_factory=dict)  # failed polls by kind
    # (point, reason) -> readings refused; only the reasons that count (Reason.counted).
    invalid: Mapping[tuple[str, Reason], int] = field(default_factory=dict)
    overruns: int = 0  # polls that ran past their slot
    next_poll: float | None = None  # wall-clock time of the next scheduled poll


@dataclass(frozen=True, slots=True)
class Health:
    """Every polled device's counters, and the SNMP client's (None before its first use)."""

    devices: Mapping[str, DeviceHealth] = field(default_factory=dict)
    snmp: ClientStats | None = None
