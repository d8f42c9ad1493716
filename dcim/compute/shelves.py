"""Power-shelf redundancy: healthy supplies against installed, and whether the shelf still
carries its load if one more supply fails (N+1 of what is left)."""

from __future__ import annotations

from collections.abc import Mapping

from dcim.compute.fresh import Inputs
from dcim.compute.snapshot import ShelfRedundancy
from dcim.site import DeviceSpec


def _rows(inputs: Inputs, device_id: str, point: str) -> Mapping[str, float] | None:
    value = inputs.value(device_id, point)
    return value if isinstance(value, Mapping) else None


def shelf_redundancy(device: DeviceSpec, inputs: Inputs) -> ShelfRedundancy:
    """Supply counts and the capacity left after losing the largest healthy supply.

    The load is the supplies' output total when every installed supply reports it (capacity is
    an output rating), else the shelf's input power (larger, so the verdict errs safe).
    Unknown inputs give None, never a guess.
    """
    healthy_rows = _rows(inputs, device.id, "supply_healthy")
    capacity_rows = _rows(inputs, device.id, "supply_capacity_w") or {}
    output_rows = _rows(inputs, device.id, "supply_power_w")
    if healthy_rows is None:
        return ShelfRedundancy(id=device.id, rack=device.rack)
    healthy = [s for s, v in healthy_rows.items() if v >= 0.5]
    capacity: float | None = None
    n1: float | None = None
    if all(s in capacity_rows for s in healthy):
        caps = [capacity_rows[s] for s in healthy]
        capacity = sum(caps)
        n1 = capacity - max(caps, default=0.0)
    load = None
    if output_rows is not None and set(output_rows) >= set(healthy_rows):
        load = sum(output_rows.values())
    elif (power := inputs.number(device.id, "power_w")) is not None:
        load = power
    carries = None if n1 is None or load is None else n1 >= load
    return ShelfRedundancy(
        id=device.id, rack=device.rack, installed=len(healthy_rows), healthy=len(healthy),
        capacity_w=capacity, n1_capacity_w=n1, load_w=load, carries_one_more_failure=carries)
