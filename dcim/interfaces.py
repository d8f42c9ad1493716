"""The contracts between the daemon and what it feeds (sinks) and what feeds it (sources).

Kept apart from both sides so the daemon, dcim/sinks and dcim/sources import these and not each
other: a source never imports a sink.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Protocol

from prometheus_client.metrics_core import Metric

from dcim.compute.snapshot import Published
from dcim.readings import PollResult
from dcim.site import DeviceSpec

# Where a source hands each reading (the daemon records it in the device's coordinator).
OnResult = Callable[[DeviceSpec, PollResult], None]


class Sink(Protocol):
    """An output that reads Published snapshots (InfluxDB, MQTT)."""

    name: str

    async def start(self) -> None:
        """Connect (in the background; never block polling)."""

    def publish(self, published: Published) -> None:
        """Take a new snapshot; must return at once (queue it)."""

    async def stop(self, timeout: float) -> None:
        """Flush what can be flushed within timeout, keep the rest (spool), disconnect."""

    def metrics(self) -> Iterable[Metric]:
        """Self-health series for the Prometheus endpoint."""


class Source(Protocol):
    """An input other than polling (the BMS): readings of devices the scheduler leaves alone."""

    name: str

    async def start(self) -> None:
        """Connect and subscribe in the background; readings go to the OnResult it was given."""

    async def stop(self, timeout: float) -> None:
        """Disconnect within timeout."""

    def metrics(self) -> Iterable[Metric]:
        """Self-health series for the Prometheus endpoint."""
