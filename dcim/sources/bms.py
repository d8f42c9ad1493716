"""A BMS on the MQTT bus as a source of readings (DSX Exchange value payloads).

Each configured topic (sources.bms.points) feeds one canonical point of a site device
that dcim does not poll itself (a leak sensor, a CDU read by the BMS). A payload is the DSX value
envelope {"value": number|null, "timestamp": epoch ms, "quality": int}; value null, quality
other than 1, a malformed payload or a physically impossible value is an invalid reading of that
point (counted, never used). Each message yields a PollResult for its device holding the latest
valid value of every mapped point, stamped with the oldest of their own timestamps, so the
device turns stale after its max_age like any polled device (give BMS-fed devices an interval
of 2 minutes or more: the bus republishes unchanged values only every 100 s).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import aiomqtt
from prometheus_client.metrics_core import Metric

from dcim.interfaces import OnResult
from dcim.metric_families import counter, gauge
from dcim.mqtt_client import MqttLink, client_id
from dcim.points import POINTS, check_range
from dcim.readings import PointValue, PollResult
from dcim.reasons import PointError, Reason
from dcim.site import BmsSpec, DeviceSpec, Site
from dcim.tasks import cancel_and_wait

log = logging.getLogger("dcim.bms")

# A BMS clock ahead of ours must not make a reading look fresher than it is.
MAX_FUTURE_S = 5.0


@dataclass(frozen=True, slots=True)
class Reading:
    """The latest message of one point: its value (None when invalid) and why not."""

    value: float | None
    time: float
    problem: PointError | None


def _wrong(message: str) -> PointError:
    return PointError(Reason.WRONG_TYPE, message)


def parse_value(payload: bytes) -> tuple[float | None, float | None, PointError | None]:
    """(value, timestamp in s, problem) from a DSX value payload."""
    try:
        data = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return None, None, _wrong("payload is not JSON")
    if not isinstance(data, dict):
        return None, None, _wrong("payload is not a JSON object")
    stamp = data.get("timestamp")
    if isinstance(stamp, bool) or not isinstance(stamp, int):
        return None, None, _wrong("timestamp missing or not epoch milliseconds")
    seconds = stamp / 1000.0
    quality = data.get("quality")
    value = data.get("value")
    if isinstance(quality, bool) or not isinstance(quality, int):
        return None, seconds, _wrong("quality missing or not an integer")
    if value is None:
        return None, seconds, PointError(Reason.SENTINEL, "value is null (BMS has no valid reading)")
    if quality != 1:
        return None, seconds, PointError(Reason.SENTINEL, f"quality {quality} (not good)")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None, seconds, _wrong("value is not a number")
    return float(value), seconds, None


class BmsSource:
    """Subscribes to the mapped topics and turns messages into PollResults."""

    name = "bms"

    def __init__(self, spec: BmsSpec, site: Site, on_result: OnResult,
                 clock: Callable[[], float] = time.time):
        # The mapping was checked with the site (dcim.site.outputs): devices and points exist.
        self.site = site
        self.on_result = on_result
        self.clock = clock
        self.link = MqttLink(spec.broker, client_id(site, spec.client_id, "bms"), log, "bms",
                             while_down="BMS-fed devices turn stale; retrying")
        self.by_topic = {p.topic: p for p in spec.points}
        self._latest: dict[str, dict[str, Reading]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        # self-health (and self.link's)
        self.received = 0
        self.invalid: dict[tuple[str, str], int] = {}
        self.last_message: float | None = None

    async def start(self) -> None:
        """Connect and subscribe in the background."""
        self._task = asyncio.create_task(self._run(), name="bms-source")

    async def stop(self, timeout: float = 3.0) -> None:
        """Unsubscribe and disconnect."""
        self._stopping = True
        if self._task is not None:
            await cancel_and_wait([self._task], timeout)

    async def _run(self) -> None:
        await self.link.run(self._session, lambda: self._stopping)

    async def _session(self, client: aiomqtt.Client) -> None:
        for topic in self.by_topic:
            await client.subscribe(topic, qos=1)
        self.link.up()
        async for message in client.messages:
            payload = message.payload
            if isinstance(payload, bytes | bytearray):
                self.handle(str(message.topic), bytes(payload))

    def handle(self, topic: str, payload: bytes) -> PollResult | None:
        """One message: update the point, emit the device's PollResult (None if not mapped)."""
        mapping = self.by_topic.get(topic)
        if mapping is None:
            return None
        now = self.clock()
        self.received += 1
        self.last_message = now
        device = self.site.devices[mapping.device]
        value, stamp, problem = parse_value(payload)
        stamp = min(stamp if stamp is not None else now, now + MAX_FUTURE_S)
        if value is not None:
            value *= mapping.scale
            why = check_range(POINTS[mapping.point], value, device.rack_cap_w, device.kind)
            if why is not None:
                value, problem = None, PointError(Reason.OUT_OF_RANGE, why)
        if problem is not None:
            key = (device.id, mapping.point)
            self.invalid[key] = self.invalid.get(key, 0) + 1
        points = self._latest.setdefault(device.id, {})
        points[mapping.point] = Reading(value, stamp, problem)
        result = self._result(device, now)
        self.on_result(device, result)
        return result

    def _result(self, device: DeviceSpec, now: float) -> PollResult:
        values: dict[str, PointValue] = {}
        errors: dict[str, PointError] = {}
        stamps: list[float] = []
        for point, reading in self._latest[device.id].items():
            if reading.value is None:
                errors[point] = reading.problem or PointError(Reason.WRONG_TYPE, "invalid")
            elif now - reading.time <= device.max_age:
                values[point] = reading.value
                stamps.append(reading.time)
            else:
                errors[point] = PointError(Reason.STALE, "the BMS has not sent it within max_age")
        newest = max(r.time for r in self._latest[device.id].values())
        return PollResult(device=device.id, time=min(stamps) if stamps else newest, duration=0.0,
                          values=values, errors=errors)

    def metrics(self) -> Iterable[Metric]:
        """dcim_bms_* self-health series."""
        yield gauge("dcim_bms_connected", "1 while subscribed to the BMS broker",
                    1.0 if self.link.connected else 0.0)
        yield gauge("dcim_bms_auth_failed", "1 while the BMS broker refuses dcim's credentials",
                    1.0 if self.link.auth_failed else 0.0)
        yield counter("dcim_bms_connect_errors", "Failed or lost connections, by kind",
                      {(k,): float(v) for k, v in sorted(self.link.connect_errors.items())},
                      ["kind"])
        yield counter("dcim_bms_messages_received", "BMS value messages received on mapped topics",
                      {(): float(self.received)}, [])
        yield counter("dcim_bms_invalid_readings",
                      "BMS readings not used (null, quality != 1, malformed, out of range)",
                      {k: float(v) for k, v in sorted(self.invalid.items())}, ["device", "point"])
        if self.last_message is not None:
            yield gauge("dcim_bms_last_message_timestamp_seconds",
                        "When the last BMS message arrived", self.last_message)
