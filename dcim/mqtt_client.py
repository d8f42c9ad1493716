"""One MQTT connection kept up, shared by the MQTT sink and the BMS source (aiomqtt).

make_client builds the client from the broker settings (TLS, credentials, a fixed client id,
a persistent session); MqttLink runs a session on it and reconnects with backoff, tells a
refused login apart from a lost network, logs each once and says when it is back.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
from collections.abc import Awaitable, Callable

import aiomqtt

from dcim.backoff import Backoff
from dcim.config import MqttBroker
from dcim.logonce import LogOnce
from dcim.site import Site

PUBLISH_TIMEOUT_S = 10.0
# CONNACK codes that mean "your credentials": 3.1.1 (4, 5) and 5.0 (134, 135).
AUTH_CODES = {4, 5, 134, 135}


def make_client(broker: MqttBroker, client_id: str) -> aiomqtt.Client:
    """An aiomqtt client for the configured broker (TLS and credentials included)."""
    tls_params = None
    if broker.tls:
        tls_params = aiomqtt.TLSParameters(
            ca_certs=str(broker.ca_file) if broker.ca_file else None,
            certfile=str(broker.cert_file) if broker.cert_file else None,
            keyfile=str(broker.key_file) if broker.key_file else None,
            cert_reqs=ssl.CERT_NONE if broker.tls_insecure else ssl.CERT_REQUIRED,
        )
    # MQTT 3.1.1 only: the DSX bus (NATS) refuses MQTT 5, and nothing here needs it.
    return aiomqtt.Client(
        broker.host, broker.port, identifier=client_id, protocol=aiomqtt.ProtocolVersion.V311,
        username=broker.username, password=broker.secret_password(),
        keepalive=int(broker.keepalive),
        clean_session=not broker.persistent_session, tls_params=tls_params,
        tls_insecure=broker.tls_insecure if broker.tls else None, timeout=PUBLISH_TIMEOUT_S,
    )


def client_id(site: Site, configured: str | None, role: str = "") -> str:
    """A stable client id (a persistent session needs one): `configured`, else
    dcim-<site>-<host>[-role]; then -I-of-N when this instance polls one shard.

    The shard is always part of it: shards on one host (or sharing one config) with one id
    would take the broker session from each other in turn (a broker drops the older one).
    """
    base = configured or "-".join(p for p in (f"dcim-{site.name}-{socket.gethostname()}", role)
                                  if p)
    return f"{base}-{site.shard[0]}-of-{site.shard[1]}" if site.shard is not None else base


def auth_refused(exc: aiomqtt.MqttError) -> bool:
    """The broker refused our username/password (or we are not authorised)."""
    rc = getattr(exc, "rc", None)
    value = getattr(rc, "value", rc)
    return isinstance(value, int) and value in AUTH_CODES


Session = Callable[[aiomqtt.Client], Awaitable[None]]


class MqttLink:
    """The connection of one MQTT client: state for the metrics, problems logged once.

    The session calls up() once it is ready (connected, subscribed): that resets the backoff
    and logs the recovery if a problem had been logged.
    """

    def __init__(self, broker: MqttBroker, client_id: str, log: logging.Logger, label: str,
                 while_down: str = "retrying with backoff"):
        self.broker = broker
        self.client_id = client_id
        self.label = label
        self.while_down = while_down
        self.log = log
        # read by metrics() from the scrape thread
        self.connected = False
        self.auth_failed = False
        self.connect_errors: dict[str, int] = {}
        self._problems = LogOnce(log)
        self._backoff = Backoff()

    @property
    def where(self) -> str:
        """host:port of the broker, for log lines."""
        return f"{self.broker.host}:{self.broker.port}"

    async def run(self, session: Session, stopping: Callable[[], bool],
                  sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        """Connect and run session(client) until it returns or the connection fails; again
        after a backoff pause (sleep may end early on stop) until stopping()."""
        while not stopping():
            try:
                async with make_client(self.broker, self.client_id) as client:
                    await session(client)
            except aiomqtt.MqttError as exc:
                self._down(exc)
            except (OSError, ssl.SSLError) as exc:
                self._down(aiomqtt.MqttError(str(exc)))
            self.connected = False
            if stopping():
                return
            await sleep(self._backoff.next())

    def up(self) -> None:
        """The session is connected and ready."""
        if self._problems.clear("connect", "auth"):
            self.log.warning("%s: connected to %s again", self.label, self.where)
        self.connected = True
        self.auth_failed = False
        self._backoff.reset()

    def _down(self, exc: aiomqtt.MqttError) -> None:
        self.connected = False
        if auth_refused(exc):
            self.auth_failed = True
            self.connect_errors["auth"] = self.connect_errors.get("auth", 0) + 1
            self._problems.problem("auth", f"{self.label}: broker {self.where} refused the "
                                           f"credentials ({exc}); {self.while_down}")
        else:
            self.connect_errors["network"] = self.connect_errors.get("network", 0) + 1
            self._problems.problem("connect", f"{self.label}: lost or no connection to "
                                              f"{self.where} ({exc}); {self.while_down}")
