"""Scalars riding in the walk's GETBULK as non-repeaters (SnmpDriver.read), on a real UDP agent.

The agent is the simulator's RFC 3416 responder on loopback, wrapped to record every request
and, for some tests, to misbehave the way field agents do: a MIB whose GETNEXT skips a scalar
that GET still reads, and an agent that refuses GETBULK with non-repeaters. snmpd and snmpsim
read every profile fixture through the same path in test_profiles_live.py.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from support.polling import device

from dcim.drivers.poller import Poller
from dcim.profile import SnmpProfile
from dcim.readings import PollResult
from dcim.sim.snmp_agent import Mib, mib_handler, serve_snmp
from dcim.site import SnmpAuth
from dcim.snmp.codec import ErrorStatus, Message, Pdu, PduType

BASE = "1.3.6.1.4.1.99999"
PROFILE = SnmpProfile.model_validate({
    "name": "fold-test", "kind": "pdu", "protocol": "snmp", "description": "fold test",
    "points": {
        "power_w": {"oid": f"{BASE}.1.0"},
        "energy_wh": {"oid": f"{BASE}.2.0"},
        "frequency_hz": {"oid": f"{BASE}.3.0", "scale": 0.1},  # not served in some tests
        "current_a": {"walk": f"{BASE}.5.1", "aggregate": "rows"},
        "outlet_power_w": {"walk": f"{BASE}.5.2", "aggregate": "rows"},
    },
})
VALUES = {f"{BASE}.1.0": 5000, f"{BASE}.2.0": 123_456, f"{BASE}.3.0": 500,
          **{f"{BASE}.5.1.{i}": 7 + i for i in range(1, 4)},
          **{f"{BASE}.5.2.{i}": 100 + i for i in range(1, 25)}}
ENGINES = ["fast", "pysnmp"]

Handler = Callable[[Message], Message | None]


def recording(handler: Handler, seen: list[tuple[PduType, int]]) -> Handler:
    def handle(request: Message) -> Message | None:
        seen.append((request.pdu.type, request.pdu.non_repeaters))
        return handler(request)
    return handle


async def polls(handler: Handler, engine: str, n: int,
                monkeypatch: pytest.MonkeyPatch) -> list[PollResult]:
    monkeypatch.setenv("DCIM_SNMP_ENGINE", engine)
    transport = await serve_snmp("127.0.0.1", 0, handler)
    port = transport.get_extra_info("sockname")[1]
    poller = Poller()
    spec = device(PROFILE, port, SnmpAuth(version=2, community="public"))
    try:
        return [await poller.poll(spec) for _ in range(n)]
    finally:
        await poller.close()
        transport.close()


def assert_all_read(result: PollResult, frequency: float | None = 50.0) -> None:
    assert result.up, result.error
    assert result.values["power_w"] == 5000 and result.values["energy_wh"] == 123_456
    assert result.values.get("frequency_hz") == frequency
    assert result.values["current_a"] == {str(i): 7 + i for i in range(1, 4)}
    assert result.values["outlet_power_w"] == {str(i): 100 + i for i in range(1, 25)}


@pytest.mark.parametrize("engine", ENGINES)
async def test_scalars_ride_in_the_walk(engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[PduType, int]] = []
    results = await polls(recording(mib_handler(Mib(VALUES)), seen), engine, 3, monkeypatch)
    for result in results:
        assert_all_read(result)
    # No GET at all: the first walk of each poll carries the three scalars as non-repeaters.
    assert all(kind is PduType.GET_BULK_REQUEST for kind, _ in seen), seen
    carrying = [n for _, n in seen if n]
    assert carrying == [3, 3, 3], seen
    # From the second poll on: the 3-row and the 24-row columns, one GETBULK each.
    assert len(seen) - seen.index((PduType.GET_BULK_REQUEST, 3), 1) == 4, seen


@pytest.mark.parametrize("engine", ENGINES)
async def test_an_absent_scalar_is_confirmed_once(engine: str,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    mib = {k: v for k, v in VALUES.items() if k != f"{BASE}.3.0"}
    seen: list[tuple[PduType, int]] = []
    results = await polls(recording(mib_handler(Mib(mib)), seen), engine, 3, monkeypatch)
    for result in results:
        assert_all_read(result, frequency=None)
        assert result.errors["frequency_hz"].reason == "unsupported"
    gets = [kind for kind, _ in seen if kind is PduType.GET_REQUEST]
    assert len(gets) == 1, seen  # the first poll asks GET whether it is really absent; no more


def skipping_getnext(mib: Mib, hidden: str) -> Handler:
    """An agent whose MIB order is broken: GETNEXT skips `hidden`, GET still reads it."""
    served = mib_handler(mib)
    without = mib_handler(Mib({k: v for k, v in VALUES.items() if k != hidden}))

    def handle(request: Message) -> Message | None:
        return (served if request.pdu.type is PduType.GET_REQUEST else without)(request)
    return handle


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_scalar_getnext_skips_is_read_by_get(engine: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[PduType, int]] = []
    handler = recording(skipping_getnext(Mib(VALUES), f"{BASE}.3.0"), seen)
    results = await polls(handler, engine, 3, monkeypatch)
    for result in results:
        assert_all_read(result)  # never missing, though GETNEXT never shows it
    assert sum(kind is PduType.GET_REQUEST for kind, _ in seen) == 3, seen  # one per poll
    assert [n for _, n in seen if n] == [3, 2, 2], seen  # it no longer rides


def refusing_non_repeaters(mib: Mib) -> Handler:
    """An old agent answering genErr to any GETBULK with non-repeaters."""
    served = mib_handler(mib)

    def handle(request: Message) -> Message | None:
        pdu = request.pdu
        if pdu.type is PduType.GET_BULK_REQUEST and pdu.non_repeaters:
            refused = Pdu(PduType.RESPONSE, pdu.request_id, ErrorStatus.genErr, 1, pdu.varbinds)
            return Message(request.version, request.community, refused)
        return served(request)
    return handle


@pytest.mark.parametrize("engine", ENGINES)
async def test_an_agent_refusing_non_repeaters_is_read_without(
        engine: str, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[tuple[PduType, int]] = []
    results = await polls(recording(refusing_non_repeaters(Mib(VALUES)), seen), engine, 3,
                          monkeypatch)
    for result in results:
        assert_all_read(result)
    assert [n for _, n in seen if n] == [3], seen  # tried once, then plain GET + walk
    assert sum(kind is PduType.GET_REQUEST for kind, _ in seen) == 3, seen
