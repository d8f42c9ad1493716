"""Which readings compute may use: from the latest poll, no older than the device's max_age."""

from __future__ import annotations

from collections.abc import Mapping

from dcim.site import DeviceSpec
from dcim.state import DeviceState


class Inputs:
    """Fresh values of every device at one instant; everything else counts as missing."""

    def __init__(self, devices: Mapping[str, DeviceSpec], state: Mapping[str, DeviceState],
                 now: float):
        self._devices = devices
        self._state = state
        self.now = now

    def is_fresh(self, device_id: str) -> bool:
        """The device's latest poll succeeded and is recent enough."""
        st = self._state.get(device_id)
        if st is None or not st.last.up:
            return False
        return self.now - st.last.time <= self._devices[device_id].max_age

    def value(self, device_id: str, point: str) -> float | Mapping[str, float] | None:
        """A fresh value as read (one number or rows), or None."""
        if not self.is_fresh(device_id):
            return None
        return self._state[device_id].last.values.get(point)

    def number(self, device_id: str, point: str) -> float | None:
        """A fresh scalar value (a per-row point is summed), or None."""
        if not self.is_fresh(device_id):
            return None
        value = self._state[device_id].last.values.get(point)
        if value is None:
            return None
        if isinstance(value, Mapping):
            return float(sum(value.values()))
        return float(value)

    def total(self, points: Mapping[str, str]) -> tuple[float | None, tuple[str, ...]]:
        """Sum of device->point values; None plus the missing devices if any is missing."""
        total = 0.0
        missing = []
        for device_id, point in points.items():
            value = self.number(device_id, point)
            if value is None:
                missing.append(device_id)
            else:
                total += value
        return (None if missing else total), tuple(missing)
