"""MQTT sink (aiomqtt): dcim's plain layout and/or the DSX BMS event bus layout.

publish() never blocks: state (retained topics and DSX values) is coalesced per topic (only the
latest value of a topic is worth sending, so that queue is bounded by the number of topics);
events go to a bounded queue whose oldest entries are dropped and counted when the broker is
away for long. A background task keeps one connection (MQTT 3.1.1, TLS, username/password, a
fixed client id and a persistent session), reconnects with backoff and sends events first; an
event leaves the queue only once the broker acknowledged it (QoS 1 PUBACK), so a broker restart
loses none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Iterable
from typing import Any

import aiomqtt
from prometheus_client.metrics_core import Metric

from dcim.backoff import pause
from dcim.compute.snapshot import Published
from dcim.config import MqttSinkConfig
from dcim.metric_families import counter, gauge
from dcim.mqtt_client import PUBLISH_TIMEOUT_S, MqttLink, client_id
from dcim.sinks.dsx import dsx_points
from dcim.sinks.mqtt_layout import EventTracker, Message, state_messages
from dcim.site import Site
from dcim.tasks import CANCEL_WAIT_S, cancel_and_wait

log = logging.getLogger("dcim.mqtt")


def encode(payload: dict[str, Any]) -> bytes:
    """Compact JSON (NaN is never produced: withheld values are null)."""
    return json.dumps(payload, separators=(",", ":"), allow_nan=False).encode()


async def _watch(client: aiomqtt.Client) -> None:
    async for _ in client.messages:
        pass  # nothing is subscribed; this only waits for the connection to end


class MqttSink:
    """The MQTT sink (see the module docstring)."""

    name = "mqtt"

    def __init__(self, config: MqttSinkConfig, site: Site):
        self.config = config
        self.site = site
        self.prefix = config.topic_prefix.rstrip("/")
        self.link = MqttLink(config, client_id(site, config.client_id), log, "mqtt",
                             while_down="events are queued; retrying with backoff")
        self._tracker = EventTracker()
        self._state: dict[str, Message] = {}
        self._dirty: dict[str, None] = {}  # insertion-ordered set of topics to (re)send
        self._events: deque[Message] = deque()
        self._dsx_last: dict[str, tuple[Any, int, float]] = {}  # topic -> (value, quality, sent)
        self._meta_sent = 0.0
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        # self-health, read by metrics() from the scrape thread (and self.link's)
        self.published: dict[str, int] = {}
        self.dropped: dict[str, int] = {}

    @property
    def client_id(self) -> str:
        """The MQTT client id this sink connects with."""
        return self.link.client_id

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start the connection task (it connects in the background)."""
        self._task = asyncio.create_task(self._run(), name="mqtt-sink")

    async def stop(self, timeout: float) -> None:
        """Send queued events (and state) within timeout, then disconnect."""
        self._stopping = True
        self._wake.set()
        if self._task is None:
            return
        await asyncio.wait({self._task}, timeout=timeout)
        await cancel_and_wait([self._task], CANCEL_WAIT_S)
        if self._events:
            log.warning("mqtt: %d events could not be delivered before shutdown", len(self._events))

    # -- publish (never blocks) ------------------------------------------------------------

    def publish(self, published: Published) -> None:
        """Queue what this snapshot changes; the background task sends it."""
        now = time.time()
        if self.config.plain:
            for message in state_messages(published, self.prefix):
                self._set_state(message)
            for event in self._tracker.events(published, self.prefix):
                self._queue_event(event)
        if self.config.dsx:
            self._dsx(published, now)
        self._wake.set()

    def _set_state(self, message: Message) -> None:
        self._state[message.topic] = message
        self._dirty[message.topic] = None

    def _queue_event(self, event: Message) -> None:
        if len(self._events) >= self.config.max_queue:
            self._events.popleft()
            self.dropped["queue_full"] = self.dropped.get("queue_full", 0) + 1
        self._events.append(event)

    def _dsx(self, published: Published, now: float) -> None:
        republish = self.config.dsx_republish
        meta_due = now - self._meta_sent >= republish
        if meta_due:
            self._meta_sent = now
        for point in dsx_points(published, self.config.dsx_tag_prefix):
            # The bus rules: metadata retained (a late subscriber needs it first) and resent every
            # 100 s; values not retained, at the configured QoS (default 0), sent on change and
            # every 100 s when unchanged.
            if meta_due or point.metadata_topic not in self._state:
                self._set_state(Message(point.metadata_topic, dict(point.metadata), retain=True,
                                        qos=1))
            payload = point.value_payload()
            last = self._dsx_last.get(point.value_topic)
            if last is None or (last[0], last[1]) != (payload["value"], payload["quality"]) \
                    or now - last[2] >= republish:
                self._dsx_last[point.value_topic] = (payload["value"], payload["quality"], now)
                self._set_state(Message(point.value_topic, payload, retain=False,
                                        qos=self.config.dsx_qos))

    # -- connection ------------------------------------------------------------------------

    async def _run(self) -> None:
        await self.link.run(self._serve, lambda: self._stopping, self._sleep)

    def _on_connected(self) -> None:
        self.link.up()
        # The broker may have lost retained state (or never had it): send it all again. A
        # message that is not retained (a DSX value) is only sent again if it never went out.
        for topic, message in self._state.items():
            if message.retain:
                self._dirty[topic] = None

    async def _serve(self, client: aiomqtt.Client) -> None:
        """Send until stopped; a broken connection raises MqttError out of here."""
        self._on_connected()
        # The message iterator ends with MqttError when the connection drops: that is how an
        # idle publisher notices (and reports) a lost broker before it has anything to send.
        watch = asyncio.create_task(_watch(client))
        try:
            while True:
                await self._flush(client)
                if self._stopping:
                    return
                self._wake.clear()
                if self._events or self._dirty:
                    continue
                wake = asyncio.create_task(self._wake.wait())
                await asyncio.wait({wake, watch}, timeout=1.0, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                if watch.done():
                    watch.result()  # raises the MqttError of the lost connection
                    raise aiomqtt.MqttError("connection closed")
        finally:
            watch.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await watch

    async def _flush(self, client: aiomqtt.Client) -> None:
        # Events first: they are what someone may be paged for.
        while self._events:
            event = self._events[0]
            await client.publish(event.topic, encode(event.payload), qos=event.qos,
                                 retain=event.retain, timeout=PUBLISH_TIMEOUT_S)
            self._events.popleft()
            self._count("event")
        while self._dirty:
            topic = next(iter(self._dirty))
            message = self._state[topic]
            await client.publish(topic, encode(message.payload), qos=message.qos,
                                 retain=message.retain, timeout=PUBLISH_TIMEOUT_S)
            # Only forget the topic if it was not updated while we were sending it.
            if self._state.get(topic) is message:
                self._dirty.pop(topic, None)
            self._count("dsx" if topic.startswith("BMS/") else "state")

    async def _sleep(self, seconds: float) -> None:
        await pause(seconds, self._wake, lambda: self._stopping)

    # -- self-health -----------------------------------------------------------------------

    def _count(self, kind: str) -> None:
        self.published[kind] = self.published.get(kind, 0) + 1

    def metrics(self) -> Iterable[Metric]:
        """dcim_mqtt_* self-health series."""
        yield gauge("dcim_mqtt_connected", "1 while connected to the MQTT broker",
                    1.0 if self.link.connected else 0.0)
        yield gauge("dcim_mqtt_auth_failed", "1 while the broker refuses dcim's credentials",
                    1.0 if self.link.auth_failed else 0.0)
        yield gauge("dcim_mqtt_events_queued", "Events waiting for the broker",
                    float(len(self._events)))
        yield gauge("dcim_mqtt_state_pending", "Retained state topics waiting to be sent",
                    float(len(self._dirty)))
        yield counter("dcim_mqtt_messages_published", "Messages the broker accepted, by kind",
                      {(k,): float(v) for k, v in sorted(self.published.items())}, ["kind"])
        drops: dict[tuple[str, ...], float] = {("queue_full",): 0.0}
        drops.update({(k,): float(v) for k, v in self.dropped.items()})
        yield counter("dcim_mqtt_messages_dropped",
                      "Events dropped because the queue was full while the broker was away",
                      drops, ["reason"])
        yield counter("dcim_mqtt_connect_errors", "Failed or lost connections, by kind",
                      {(k,): float(v) for k, v in sorted(self.link.connect_errors.items())}, ["kind"])
