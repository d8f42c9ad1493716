"""Which readings compute may use: from the latest poll, no older than the device's max_age."""

from __future__ import annotations

from collections.abc import Mapping

from dcim.readings import PointValue
from dcim.site import DeviceSpec
from dcim.state import DeviceState


class Inputs:
    """Fresh values of every device at one instant; everything else counts as missing."""

    def __init__(self, devices: Mapping[str, DeviceSpec], state: Mapping[str, DeviceState],
                 now: float):
        self._devices = devices
        self._state = state
        self.now = now
        # A device is asked for by its rack, PUE, CDU, overhead and status: decide once a tick.
        self._fresh: dict[str, Mapping[str, PointValue] | None] = {}

    def _values(self, device_id: str) -> Mapping[str, PointValue] | None:
        try:
            return self._fresh[device_id]
        except KeyError:
            pass
        st = self._state.get(device_id)
        values = None
        if st is not None and st.last.up and \
                self.now - st.last.time <= self._devices[device_id].max_age:
            values = st.last.values
        self._fresh[device_id] = values
        return values

    def is_fresh(self, device_id: str) -> bool:
        """The device's latest poll succeeded and is recent enough."""
        return self._values(device_id) is not None

    def value(self, device_id: str, point: str) -> float | Mapping[str, float] | None:
        """A fresh value as read (one number or rows), or None."""
        values = self._values(device_id)
        return None if values is None else values.get(point)

    def number(self, device_id: str, point: str) -> float | None:
        """A fresh scalar value (a per-row point is summed), or None."""
        values = self._values(device_id)
        if values is None:
            return None
        value = values.get(point)
        if value is None:
            return None
        if isinstance(value, float | int):
            return float(value)
        return float(sum(value.values()))

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
