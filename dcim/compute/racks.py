"""Rack power: feeds summed from their PDUs, utilization against the cap, 2N failover."""

from __future__ import annotations

from dcim.compute.fresh import Inputs
from dcim.compute.snapshot import RackPower
from dcim.site import RackSpec


def rack_power(rack: RackSpec, inputs: Inputs) -> RackPower:
    """A rack's power; the total is withheld unless every device of every feed is fresh."""
    feeds: dict[str, float | None] = {}
    missing: list[str] = []
    for feed, points in rack.feed_points.items():
        feeds[feed], feed_missing = inputs.total(points)
        missing.extend(feed_missing)
    complete = bool(feeds) and not missing
    power = sum(v for v in feeds.values() if v is not None) if complete else None
    # 2N: when one feed is lost the other carries the whole rack, so the rack must fit on one.
    failover = None
    if power is not None and len(feeds) >= 2:
        failover = power > rack.feed_w
    return RackPower(
        id=rack.id, cap_w=rack.cap_w, feed_capacity_w=rack.feed_w, feeds=feeds, power_w=power,
        utilization=None if power is None else power / rack.cap_w, failover_risk=failover,
        missing=tuple(missing), hall=rack.hall, row=rack.row, tenant=rack.tenant,
    )
