"""The shared reconnect parts: dcim/backoff.py, dcim/logonce.py, dcim/mqtt_client.py.

MqttLink is driven against a loopback port nobody listens on (a real refused TCP connect);
the broker-side behaviour (auth refusal, reconnect after a restart) is in
tests/live/test_mqtt_broker.py and tests/live/test_mqtt_source.py against Mosquitto.
"""

from __future__ import annotations

import asyncio
import logging
import socket

import aiomqtt
import pytest
from support.sink_site import make_site

from dcim.backoff import MAX_BACKOFF_S, Backoff, pause
from dcim.config import MqttBroker
from dcim.logonce import LogOnce
from dcim.mqtt_client import MqttLink, auth_refused, client_id
from dcim.site import restrict_to_shard


def test_backoff_doubles_with_jitter_up_to_the_maximum_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, jitter=0.3)
    delays = [backoff.next() for _ in range(6)]
    for delay, base in zip(delays, [1, 2, 4, 8, 8, 8], strict=True):
        assert base <= delay <= base * 1.3
    backoff.reset()
    assert 1.0 <= backoff.next() <= 1.3
    assert Backoff().maximum == MAX_BACKOFF_S


def test_log_once_logs_a_problem_once_until_it_clears(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("dcim.test")
    problems = LogOnce(log)
    with caplog.at_level(logging.ERROR, logger="dcim.test"):
        for _ in range(3):
            problems.problem("net", "network down")
        problems.problem("auth", "refused")
        assert "net" in problems
        assert problems.clear("net") is True
        assert problems.clear("net") is False
        problems.problem("net", "network down again")
    assert [r.getMessage() for r in caplog.records] == ["network down", "refused",
                                                        "network down again"]


async def test_pause_ends_early_only_when_stopping() -> None:
    wake = asyncio.Event()
    stopping = False

    async def poke() -> None:
        nonlocal stopping
        wake.set()  # new work: must not end the pause
        await asyncio.sleep(0.05)
        assert not task.done()
        stopping = True
        wake.set()

    task = asyncio.create_task(pause(30.0, wake, lambda: stopping))
    await poke()
    await asyncio.wait_for(task, 5.0)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_link_retries_with_backoff_and_logs_the_outage_once(
        caplog: pytest.LogCaptureFixture) -> None:
    broker = MqttBroker(host="127.0.0.1", port=_closed_port())
    link = MqttLink(broker, "dcim-test", logging.getLogger("dcim.test"), "test")
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)

    async def session(client: aiomqtt.Client) -> None:
        raise AssertionError("nothing listens there")

    with caplog.at_level(logging.ERROR, logger="dcim.test"):
        await asyncio.wait_for(link.run(session, lambda: len(pauses) >= 4, sleep), 30.0)
    assert link.connect_errors == {"network": 4} and not link.connected and not link.auth_failed
    assert [p >= base for p, base in zip(pauses, [1, 2, 4, 8], strict=True)] == [True] * 4
    errors = [r.getMessage() for r in caplog.records]
    assert len(errors) == 1 and errors[0].startswith(f"test: lost or no connection to {link.where}")
    # the session says it is ready: the recovery is logged and the backoff starts over
    with caplog.at_level(logging.WARNING, logger="dcim.test"):
        link.up()
    assert link.connected and caplog.records[-1].getMessage() == f"test: connected to {link.where} again"


def test_auth_refusal_is_told_apart_from_a_network_error() -> None:
    class Refused(aiomqtt.MqttError):
        rc = 5  # CONNACK "not authorised" (MQTT 3.1.1)

    assert auth_refused(Refused("refused"))
    assert not auth_refused(aiomqtt.MqttError("connection lost"))


def test_client_ids_are_stable_and_carry_the_role_and_shard() -> None:
    site = make_site()
    host = socket.gethostname()
    assert client_id(site, None) == f"dcim-hall-1-{host}"
    assert client_id(site, None, "bms") == f"dcim-hall-1-{host}-bms"
    assert client_id(site, "mine", "bms") == "mine"  # a configured id is used as given
    shard = restrict_to_shard(site, 1, 2)
    assert client_id(shard, "mine") == "mine-1-of-2"
    assert client_id(shard, None, "bms") == f"dcim-hall-1-{host}-bms-1-of-2"
