"""SNMPv3 (USM) on dcim's own stack against net-snmp's snmpd, with pysnmp as the reference.

Every SNMP fixture is served by snmpd and read over v3 authPriv by both engines, which must
give the golden points and the same raw values; every security level and auth x priv
combination the fast path ships is read by both; wrong keys, unknown users, a level the user
lacks, an agent restart and a clock that jumped give named errors or recover by themselves;
forged answers (bad digest, replayed outside the time window) are dropped, not believed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
from support.polling import device, poll
from support.profiles import assert_golden, golden_of, shipped_registry, snmp_fixture_path
from support.registry import (
    SNMP_V3_MATRIX,
    ServerRegistry,
    dcim_auth,
    v3_user,
)
from support.servers import SnmpdServer, SnmpV3User
from support.snmprec import snmpd_values

from dcim.drivers.poller import Poller
from dcim.drivers.snmp import FastClient
from dcim.profile import SnmpProfile
from dcim.site import SnmpAuth
from dcim.snmp.client import SnmpClient, SnmpTimeout, UsmError
from dcim.snmp.codec import (
    MsgFlags,
    Pdu,
    PduType,
    UsmParameters,
    decode_v3_message,
    encode_pdu,
    encode_scoped_pdu,
    encode_v3_message,
)
from dcim.snmp.security import (
    AuthProtocol,
    EngineClock,
    PrivProtocol,
    UsmErrorKind,
    UsmUser,
    unwrap,
    wrap_request,
)

REGISTRY = shipped_registry()
SNMP_PROFILES = [p for p in REGISTRY.all() if isinstance(p, SnmpProfile)]
BENCH_USERS = [v3_user("SHA", "AES"), v3_user("SHA256", "AES256")]
SYS_NAME_OID = "1.3.6.1.2.1.1.5.0"


# --- every fixture, both engines, over v3 ------------------------------------------------------


@pytest.mark.parametrize("profile", SNMP_PROFILES, ids=lambda p: p.name)
def test_fixture_over_v3_both_engines_point_for_point(
        profile: SnmpProfile, snmpd_factory: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    values, sys_object_id = snmpd_values(snmp_fixture_path(profile.name))
    extra = [f"sysObjectID {sys_object_id}"] if sys_object_id else []
    agent: SnmpdServer = snmpd_factory(communities=(), v3_users=BENCH_USERS, values=values,
                                       extra_config=extra)
    for user in BENCH_USERS:
        spec = device(profile, agent.port, dcim_auth(user))
        fast = poll(spec, "fast", monkeypatch)
        reference = poll(spec, "pysnmp", monkeypatch)
        label = f"{profile.name} {user.name}"
        assert fast.up, f"{label} fast: {fast.error}"
        assert reference.up, f"{label} pysnmp: {reference.error}"
        assert_golden(fast.values, fast.errors, golden_of(profile), f"{label} fast")
        assert (fast.values, fast.errors, fast.raw) == (
            reference.values, reference.errors, reference.raw), label


# --- every security level and auth x priv combination ------------------------------------------

PDU_OIDS = {f"1.3.6.1.4.1.99999.1.{i}.0": 1000 + i for i in range(1, 31)}
TEST_PROFILE = SnmpProfile.model_validate({
    "name": "snmpd-v3-test", "kind": "pdu", "protocol": "snmp", "description": "snmpd overrides",
    "points": {
        "power_w": {"oid": "1.3.6.1.4.1.99999.1.1.0"},
        "outlet_power_w": {"walk": "1.3.6.1.4.1.99999.1", "aggregate": "rows"},
        "frequency_hz": {"oid": "1.3.6.1.4.1.99999.2.0"},  # not served: noSuchObject
    },
})


@pytest.fixture(scope="module")
def matrix_agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SnmpdServer]:
    """One snmpd knowing every user of SNMP_V3_MATRIX (and SNMP_V3_USER-like BENCH_USERS)."""
    registry = ServerRegistry(tmp_path_factory)
    server = registry.add(SnmpdServer(
        registry.workdir("snmpd-v3"), communities=(), v3_users=SNMP_V3_MATRIX,
        overrides=[(oid, "integer", value) for oid, value in PDU_OIDS.items()]))
    yield server
    registry.stop_all()


@pytest.mark.parametrize("user", SNMP_V3_MATRIX, ids=lambda u: u.name)
def test_every_security_combination_both_engines(user: SnmpV3User, matrix_agent: SnmpdServer,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    spec = device(TEST_PROFILE, matrix_agent.port, dcim_auth(user))
    assert FastClient.handles(dcim_auth(user))
    results = {engine: poll(spec, engine, monkeypatch) for engine in ("fast", "pysnmp")}
    for engine, result in results.items():
        assert result.up, f"{user.name} {engine}: {result.error}"
        assert result.values["power_w"] == 1001
        rows = result.values["outlet_power_w"]
        assert isinstance(rows, dict) and len(rows) == 30 and rows["30.0"] == 1030
        assert result.errors["frequency_hz"].message == "noSuchObject"
    assert results["fast"].raw == results["pysnmp"].raw


def test_md5_and_des_users_go_to_pysnmp() -> None:
    legacy = SnmpAuth(version=3, user="old", auth_protocol="MD5", auth_key="k" * 8,
                      priv_protocol="DES", priv_key="p" * 8)
    assert not FastClient.handles(legacy)
    assert not FastClient.handles(SnmpAuth(version=3, user="old", auth_protocol="SHA",
                                           auth_key="k" * 8, priv_protocol="DES",
                                           priv_key="p" * 8))


# --- clear errors -------------------------------------------------------------------------------

SHA_AES = v3_user("SHA", "AES")


def _bad(**changes: Any) -> SnmpAuth:
    good = dcim_auth(SHA_AES)
    return SnmpAuth(**{**good.__dict__, **changes})


@pytest.mark.parametrize(("auth", "kind"), [
    (_bad(auth_key="not-the-auth-key"), "usm_wrong_digest"),
    (_bad(priv_key="not-the-priv-key"), "usm_decryption_error"),
    (_bad(user="nobody-here"), "usm_unknown_user_name"),
    # an authNoPriv user asking for privacy: the agent has no priv key for it
    (SnmpAuth(**{**dcim_auth(v3_user("SHA224", None)).__dict__, "priv_protocol": "AES",
                 "priv_key": "whatever-key"}), "usm_unsupported_sec_level"),
], ids=["wrong-auth-key", "wrong-priv-key", "unknown-user", "level-not-offered"])
def test_wrong_credentials_give_named_errors(auth: SnmpAuth, kind: str, matrix_agent: SnmpdServer,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    result = poll(device(TEST_PROFILE, matrix_agent.port, auth, timeout=0.5), "fast", monkeypatch)
    assert not result.up
    assert result.error_kind == kind, result.error
    error = result.error or ""
    for secret in (auth.auth_key, auth.priv_key, SHA_AES.auth_key, SHA_AES.priv_key):
        assert secret is None or secret not in error
    # the reference engine refuses them too
    assert not poll(device(TEST_PROFILE, matrix_agent.port, auth, timeout=0.5), "pysnmp",
                    monkeypatch).up


def test_short_passphrase_is_a_config_error(matrix_agent: SnmpdServer,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    result = poll(device(TEST_PROFILE, matrix_agent.port, _bad(auth_key="short")), "fast",
                  monkeypatch)
    assert result.error_kind == "config" and "8 characters" in (result.error or "")
    assert "short" not in (result.error or "")


# --- time: agent restart, a jump of our clock ---------------------------------------------------


async def test_agent_restart_and_clock_jump_resync(snmpd_factory: Any) -> None:
    agent: SnmpdServer = snmpd_factory(communities=(), v3_users=[SHA_AES])
    spec = device(TEST_PROFILE, agent.port, dcim_auth(SHA_AES))
    poller = Poller()
    try:
        client = SnmpClient()
        async with client:
            usm = UsmUser(SHA_AES.name.encode(), AuthProtocol.SHA, SHA_AES.auth_key.encode(),
                          PrivProtocol.AES, SHA_AES.priv_key.encode())
            first = await client.get("127.0.0.1", agent.port, usm, 3, [SYS_NAME_OID])
            clock = client._engines[("127.0.0.1", agent.port)]
            boots = clock.boots
            # our notion of the agent's time jumps 1000 s ahead: notInTimeWindow, re-sync, OK
            clock.learned_at -= 1000
            assert await client.get("127.0.0.1", agent.port, usm, 3, [SYS_NAME_OID]) == first
            assert client.stats.usm_resyncs == 1
            # the agent reboots: engineBoots + 1, engineTime from 0; the next request re-syncs
            await asyncio.to_thread(agent.restart)
            assert await client.get("127.0.0.1", agent.port, usm, 3, [SYS_NAME_OID]) == first
            assert client.stats.usm_resyncs == 2
            assert clock.boots == boots + 1
            assert client.stats.usm_dropped == 0
        # and through the driver, across the restart
        assert (await poller.poll(spec)).up
    finally:
        await poller.close()


# --- forged agents: digest, replay, stubborn clock ----------------------------------------------

ENGINE_ID = b"\x80\x00\x1f\x88\x04dcim-fake"
FAKE_USER = UsmUser(b"fake", AuthProtocol.SHA256, b"fake-auth-key", PrivProtocol.AES256,
                    b"fake-priv-key")
VALUE = b"fake-agent"


class FakeAgent(asyncio.DatagramProtocol):
    """An authoritative engine built from dcim's own USM, answering in a chosen bad way."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.clock = EngineClock(ENGINE_ID, 7, 5000, time.monotonic())
        self.transport: Any = None
        self.salt = 1

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        assert self.transport is not None
        msg = decode_v3_message(data)
        if not msg.usm.engine_id:  # discovery: the unauthenticated unknownEngineID report
            report = Pdu(PduType.REPORT, 0, 0, 0, (((1, 3, 6, 1, 6, 3, 15, 1, 1, 4, 0), 1),))
            usm = UsmParameters(ENGINE_ID, 7, 5000, b"", b"", b"")
            out, _ = encode_v3_message(msg.msg_id, 65507, MsgFlags(0), usm,
                                       encode_scoped_pdu(ENGINE_ID, b"", encode_pdu(report)))
            self.transport.sendto(out, addr)
            return
        request = unwrap(msg, data, FAKE_USER, self.clock, time.monotonic()).pdu
        answer = Pdu(PduType.RESPONSE, request.request_id, 0, 0,
                     tuple((oid, VALUE) for oid, _ in request.varbinds))
        clock = self.clock
        if self.mode == "stubborn":  # always says notInTimeWindow, authenticated
            answer = Pdu(PduType.REPORT, request.request_id, 0, 0,
                         (((1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0), 1),))
        elif self.mode == "replay":  # a response signed with a time 1000 s in the past
            clock = EngineClock(ENGINE_ID, 7, 4000 - 1000, time.monotonic())
        self.salt += 1
        out = wrap_request(FAKE_USER, clock, msg.msg_id, encode_pdu(answer), self.salt,
                           time.monotonic())
        if self.mode == "bad-digest":
            out = bytearray(out)
            out[-1] ^= 0x01  # ciphertext changed, digest no longer matches
            out = bytes(out)
        self.transport.sendto(out, addr)


@pytest.fixture
async def fake_agent(request: pytest.FixtureRequest) -> AsyncIterator[tuple[FakeAgent, int]]:
    loop = asyncio.get_running_loop()
    transport, agent = await loop.create_datagram_endpoint(
        lambda: FakeAgent(request.param), local_addr=("127.0.0.1", 0))
    try:
        yield agent, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


@pytest.mark.parametrize("fake_agent", ["good"], indirect=True)
async def test_fake_agent_is_a_fair_counterpart(fake_agent: tuple[FakeAgent, int]) -> None:
    _, port = fake_agent
    async with SnmpClient() as client:
        assert await client.get("127.0.0.1", port, FAKE_USER, 3, [SYS_NAME_OID]) == [
            ((1, 3, 6, 1, 2, 1, 1, 5, 0), VALUE)]


@pytest.mark.parametrize("fake_agent", ["bad-digest", "replay"], indirect=True)
async def test_forged_and_replayed_answers_are_dropped(fake_agent: tuple[FakeAgent, int]) -> None:
    _, port = fake_agent
    async with SnmpClient() as client:
        # mark the agent's clock as well known so a 1000 s old answer is a replay
        await client._discover(("127.0.0.1", port), 0.5, 0)
        with pytest.raises(SnmpTimeout):
            await client.get("127.0.0.1", port, FAKE_USER, 3, [SYS_NAME_OID], timeout=0.3,
                             retries=1)
        assert client.stats.usm_dropped == 2  # the first try and its retry, both refused


@pytest.mark.parametrize("fake_agent", ["stubborn"], indirect=True)
async def test_agent_that_never_accepts_our_time_is_a_named_error(
        fake_agent: tuple[FakeAgent, int]) -> None:
    _, port = fake_agent
    async with SnmpClient() as client:
        with pytest.raises(UsmError) as caught:
            await client.get("127.0.0.1", port, FAKE_USER, 3, [SYS_NAME_OID], timeout=0.5)
    assert caught.value.kind is UsmErrorKind.NOT_IN_TIME_WINDOW
    assert "notInTimeWindow" in str(caught.value) and client.stats.usm_resyncs == 2
