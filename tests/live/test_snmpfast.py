"""asyncio SNMP client and agent core, against net-snmp's snmpd, fake agents and pysnmp."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import time
from collections.abc import AsyncIterator, Iterator
from ipaddress import IPv4Address
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pysnmp.hlapi.v3arch.asyncio import (
    CommunityData,
    ContextData,
    ObjectIdentity,
    ObjectType,
    SnmpEngine,
    UdpTransportTarget,
    bulk_cmd,
    get_cmd,
    next_cmd,
)
from support.registry import ServerRegistry
from support.servers import SnmpdServer

from dcim.sim.snmp_agent import Mib, mib_handler, respond, serve_snmp
from dcim.snmp.client import SnmpClient, SnmpError, SnmpErrorStatus, SnmpTimeout
from dcim.snmp.codec import (
    END_OF_MIB_VIEW,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    OID,
    V1,
    V2C,
    Counter32,
    Counter64,
    ErrorStatus,
    Gauge32,
    Message,
    Opaque,
    Pdu,
    PduType,
    TimeTicks,
    Value,
    VarBind,
    VarBindException,
    bulk_pdu,
    decode_message,
    encode_message,
    format_oid,
    parse_oid,
)

LOCALHOST = "127.0.0.1"


def free_udp_port() -> int:
    """A UDP port on loopback that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((LOCALHOST, 0))
        return int(sock.getsockname()[1])


def typed(varbinds: list[VarBind]) -> list[tuple[OID, type, Value]]:
    """Varbinds with their value types, so Counter32(5) and Gauge32(5) differ."""
    return [(oid, type(v), v) for oid, v in varbinds]


# ---------------------------------------------------------------------------------------------
# net-snmp's snmpd, started per module on a free loopback port

ENT = "1.3.6.1.4.1.99999.1"
PASS_BASE = "1.3.6.1.4.1.99998"
OVERRIDES: dict[str, tuple[str, str, Value]] = {
    # oid: (snmpd.conf type, text, what we must decode)
    f"{ENT}.1.0": ("integer", "42", 42),
    f"{ENT}.2.0": ("unsigned", "4294967295", Gauge32(2**32 - 1)),
    f"{ENT}.3.0": ("counter", "123", Counter32(123)),
    f"{ENT}.4.0": ("octet_str", '"hello"', b"hello"),
    f"{ENT}.5.0": ("integer", "-7", -7),
    f"{ENT}.6.0": ("integer", "-2147483648", -(2**31)),
    f"{ENT}.7.0": ("timeticks", "12345", TimeTicks(12345)),
    f"{ENT}.8.0": ("object_id", ".1.3.6.1.4.1.99999.2.999", (1, 3, 6, 1, 4, 1, 99999, 2, 999)),
    f"{ENT}.9.0": ("octet_str", '"' + "x" * 300 + '"', b"x" * 300),  # long-form lengths
}
# `override` cannot produce these types, net-snmp's pass_persist protocol can
PASSED: dict[str, tuple[str, str, Value]] = {
    f"{PASS_BASE}.1.0": ("counter64", "18446744073709551615", Counter64(2**64 - 1)),
    f"{PASS_BASE}.2.0": ("ipaddress", "10.1.2.3", IPv4Address("10.1.2.3")),
    f"{PASS_BASE}.3.0": ("gauge", "4294967295", Gauge32(2**32 - 1)),
}
EXPECTED: dict[OID, Value] = {parse_oid(k): v[2] for k, v in {**OVERRIDES, **PASSED}.items()}


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """Port of a running net-snmp agent serving OVERRIDES and PASSED (module-wide)."""
    registry = ServerRegistry(tmp_path_factory)
    registry.add(SnmpdServer(
        registry.workdir("snmpd"), sys_name="pdu-sim",
        overrides=[(oid, kind, text) for oid, (kind, text, _) in OVERRIDES.items()],
        values={oid: (kind, text) for oid, (kind, text, _) in PASSED.items()},
        extra_config=["sysLocation rack-a1", "sysContact ops@example.invalid"],
    ))
    try:
        yield registry.servers[0].port
    finally:
        registry.stop_all()


@pytest.fixture
async def client() -> AsyncIterator[SnmpClient]:
    async with SnmpClient() as c:
        yield c


# ---------------------------------------------------------------------------------------------
# pysnmp 7 as the reference manager


def from_pysnmp_value(value: Any) -> Value:
    """Our model of a value pysnmp decoded, chosen by its BER tag."""
    tag = value.tagSet[-1]
    number: int = tag.tagClass | tag.tagFormat | tag.tagId
    unsigned: dict[int, type[int]] = {0x41: Counter32, 0x42: Gauge32, 0x43: TimeTicks, 0x46: Counter64}
    if number in unsigned:
        return unsigned[number](int(value))
    converters: dict[int, Any] = {
        0x02: int,
        0x04: bytes,
        0x05: lambda _: None,
        0x06: tuple,
        0x40: lambda v: IPv4Address(bytes(v.asOctets())),
        0x44: lambda v: Opaque(bytes(v)),
    }
    convert = converters.get(number, lambda _: VarBindException(number))
    return convert(value)  # type: ignore[no-any-return]


async def pysnmp_query(
    port: int, oids: list[OID], version: int = V2C, op: str = "get", nr: int = 0, mr: int = 0
) -> list[VarBind]:
    """Run one pysnmp get/next/bulk and return its varbinds in our model."""
    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create((LOCALHOST, port), timeout=2, retries=1)
        auth = CommunityData("public", mpModel=version)
        objs = [ObjectType(ObjectIdentity(format_oid(o))) for o in oids]
        if op == "get":
            result = await get_cmd(engine, auth, target, ContextData(), *objs, lookupMib=False)
        elif op == "next":
            result = await next_cmd(engine, auth, target, ContextData(), *objs, lookupMib=False)
        else:
            result = await bulk_cmd(
                engine, auth, target, ContextData(), nr, mr, *objs, lookupMib=False
            )
        error_indication, error_status, _, varbinds = result
        assert error_indication is None and int(error_status) == 0, result
        return [(tuple(oid), from_pysnmp_value(v)) for oid, v in varbinds]
    finally:
        engine.close_dispatcher()


# ---------------------------------------------------------------------------------------------
# client against the real agent

SYSTEM_SCALARS = [parse_oid(f"1.3.6.1.2.1.1.{i}.0") for i in (1, 2, 4, 5, 6)]


async def test_get_matches_expected_and_pysnmp(snmpd: int, client: SnmpClient) -> None:
    oids = [*SYSTEM_SCALARS, *EXPECTED]
    ours = await client.get(LOCALHOST, snmpd, "public", V2C, oids, timeout=2)
    assert [oid for oid, _ in ours] == oids
    assert typed(ours[len(SYSTEM_SCALARS) :]) == typed(list(EXPECTED.items()))
    assert dict(ours)[(1, 3, 6, 1, 2, 1, 1, 5, 0)] == b"pdu-sim"
    assert typed(ours) == typed(await pysnmp_query(snmpd, oids))


async def test_get_v1_and_text_oids(snmpd: int, client: SnmpClient) -> None:
    v1_ok = [oid for oid, v in EXPECTED.items() if not isinstance(v, Counter64)]
    ours = await client.get(LOCALHOST, snmpd, b"public", V1, v1_ok)
    assert typed(ours) == typed([(oid, EXPECTED[oid]) for oid in v1_ok])
    assert typed(ours) == typed(await pysnmp_query(snmpd, v1_ok, version=V1))
    text = await client.get(LOCALHOST, snmpd, "public", V1, [f".{ENT}.1.0", f"{ENT}.4.0"])
    assert text == [(parse_oid(f"{ENT}.1.0"), 42), (parse_oid(f"{ENT}.4.0"), b"hello")]


async def test_missing_objects_v2c_exceptions_and_v1_nosuchname(
    snmpd: int, client: SnmpClient
) -> None:
    missing_object = (1, 3, 6, 1, 2, 1, 1, 99, 0)
    missing_instance = (1, 3, 6, 1, 2, 1, 1, 5, 1)
    present = parse_oid(f"{ENT}.1.0")
    got = await client.get(
        LOCALHOST, snmpd, "public", V2C, [present, missing_object, missing_instance]
    )
    assert got == [(present, 42), (missing_object, NO_SUCH_OBJECT),
                   (missing_instance, NO_SUCH_INSTANCE)]  # fmt: skip
    with pytest.raises(SnmpErrorStatus) as err:
        await client.get(LOCALHOST, snmpd, "public", V1, [present, missing_object])
    assert (err.value.name, err.value.status, err.value.index) == ("noSuchName", 2, 2)
    assert err.value.oid == missing_object


async def test_get_next_matches_pysnmp(snmpd: int, client: SnmpClient) -> None:
    starts = [parse_oid(o) for o in ("1.3.6.1.2.1.1.4", f"{ENT}", f"{ENT}.3.0", PASS_BASE)]
    ours = await client.get_next(LOCALHOST, snmpd, "public", V2C, starts)
    assert [oid for oid, _ in ours] == [
        (1, 3, 6, 1, 2, 1, 1, 4, 0),
        parse_oid(f"{ENT}.1.0"),
        parse_oid(f"{ENT}.4.0"),
        parse_oid(f"{PASS_BASE}.1.0"),
    ]
    assert typed(ours) == typed(await pysnmp_query(snmpd, starts, op="next"))
    # past the last OID of the agent
    assert await client.get_next(LOCALHOST, snmpd, "public", V2C, [(2, 9)]) == [
        ((2, 9), END_OF_MIB_VIEW)
    ]
    with pytest.raises(SnmpErrorStatus) as err:
        await client.get_next(LOCALHOST, snmpd, "public", V1, [(2, 9)])
    assert (err.value.name, err.value.index) == ("noSuchName", 1)


async def test_get_bulk_matches_pysnmp(snmpd: int, client: SnmpClient) -> None:
    starts = [(1, 3, 6, 1, 2, 1, 1, 4), parse_oid(ENT), parse_oid(PASS_BASE)]
    ours = await client.get_bulk(LOCALHOST, snmpd, "public", V2C, starts, 1, 4)
    assert len(ours) == 1 + 2 * 4
    assert ours[0] == ((1, 3, 6, 1, 2, 1, 1, 4, 0), b"ops@example.invalid")
    assert [oid for oid, _ in ours[1::2]] == [parse_oid(f"{ENT}.{i}.0") for i in (1, 2, 3, 4)]
    passed = [parse_oid(o) for o in sorted(PASSED)]
    assert [oid for oid, _ in ours[2::2]] == [*passed, parse_oid(f"{ENT}.1.0")]
    assert typed(ours) == typed(await pysnmp_query(snmpd, starts, op="bulk", nr=1, mr=4))
    with pytest.raises(ValueError):
        await client.get_bulk(LOCALHOST, snmpd, "public", V1, starts, 0, 4)


async def test_bulk_walk_of_system_group_matches_snmpbulkwalk(
    snmpd: int, client: SnmpClient
) -> None:
    root = (1, 3, 6, 1, 2, 1, 1)
    walked: list[OID] = []
    cursor: OID = root
    while True:
        page = await client.get_bulk(LOCALHOST, snmpd, "public", V2C, [cursor], 0, 20)
        inside = [(o, v) for o, v in page if o[: len(root)] == root and v is not END_OF_MIB_VIEW]
        walked += [o for o, _ in inside]
        if len(inside) < len(page) or not page:
            break
        cursor = page[-1][0]
    proc = await asyncio.create_subprocess_exec(
        "snmpbulkwalk", "-v2c", "-c", "public", "-On", "-m", "", f"{LOCALHOST}:{snmpd}",
        format_oid(root), stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, _ = await proc.communicate()
    theirs = [oid for oid, _ in _parse_netsnmp(out)]
    assert len(walked) > 10  # sysORTable makes the system group long enough to page
    assert walked == theirs


async def test_300_concurrent_requests_all_answered(snmpd: int, client: SnmpClient) -> None:
    # override OIDs only: snmpd forks the pass script per request and, blocked on that,
    # overflows its own receive buffer (RcvbufErrors) with hundreds of requests queued
    oids = [parse_oid(o) for o in OVERRIDES]

    async def one(i: int) -> list[VarBind]:
        pick = [oids[(i + k) % len(oids)] for k in range(1 + i % 5)]
        return await client.get(LOCALHOST, snmpd, "public", V2C, pick, timeout=10, retries=0)

    results = await asyncio.gather(*(one(i) for i in range(300)))
    for i, got in enumerate(results):
        pick = [oids[(i + k) % len(oids)] for k in range(1 + i % 5)]
        assert typed(got) == typed([(o, EXPECTED[o]) for o in pick])
    assert client.stats.timeouts == 0 and client.in_flight == 0
    assert client.stats.sent == 300


# ---------------------------------------------------------------------------------------------
# client behaviour against silent and misbehaving fake agents


async def test_timeout_when_nothing_listens(client: SnmpClient) -> None:
    port = free_udp_port()
    start = time.monotonic()
    with pytest.raises(SnmpTimeout):
        await client.get(LOCALHOST, port, "public", V2C, ["1.3.6.1.2.1.1.1.0"], 0.15, 2)
    elapsed = time.monotonic() - start
    assert 0.45 <= elapsed < 2.0  # three tries of 0.15 s each
    assert (client.stats.sent, client.stats.retries, client.stats.timeouts) == (1, 2, 1)
    assert client.in_flight == 0
    assert isinstance(SnmpTimeout("x"), TimeoutError)


async def test_one_client_timer_serves_every_deadline(client: SnmpClient) -> None:
    """The client's single timer is armed for the earliest deadline: a short request sent after
    a long one still times out (and retries) on its own schedule, and a burst of requests
    sharing a timeout all time out, with nothing left in flight."""
    silent = [free_udp_port() for _ in range(3)]
    oid = ["1.3.6.1.2.1.1.1.0"]
    long = asyncio.create_task(client.get(LOCALHOST, silent[0], "public", V2C, oid, 60.0, 0))
    await asyncio.sleep(0)  # the long request is sent and the timer armed for it first
    with pytest.raises(SnmpTimeout):
        await client.get(LOCALHOST, silent[1], "public", V2C, oid, 0.1, 1)
    assert not long.done() and client.stats.retries == 1
    burst = [client.get(LOCALHOST, silent[2], "public", V2C, oid, 0.1, 0) for _ in range(20)]
    results = await asyncio.gather(*burst, return_exceptions=True)
    assert all(isinstance(r, SnmpTimeout) for r in results)
    assert client.stats.timeouts == 21 and client.in_flight == 1
    long.cancel()
    with pytest.raises(asyncio.CancelledError):
        await long
    assert client.in_flight == 0


class FakeAgent(asyncio.DatagramProtocol):
    """Records every datagram; the test decides what to answer and from where."""

    def __init__(self) -> None:
        self.received: asyncio.Queue[tuple[bytes, tuple[Any, ...]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        self.received.put_nowait((data, addr))

    def send(self, data: bytes, addr: tuple[Any, ...]) -> None:
        assert self.transport is not None
        self.transport.sendto(data, addr)


@pytest.fixture
async def fake_agent() -> AsyncIterator[tuple[FakeAgent, int]]:
    transport, agent = await asyncio.get_running_loop().create_datagram_endpoint(
        FakeAgent, local_addr=(LOCALHOST, 0)
    )
    try:
        yield agent, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


def _reply(rid: int, varbinds: tuple[VarBind, ...], status: int = 0, index: int = 0,
           version: int = V2C, pdu_type: PduType = PduType.RESPONSE) -> bytes:  # fmt: skip
    return encode_message(version, b"public", Pdu(pdu_type, rid, status, index, varbinds))


async def test_wrong_source_unknown_id_and_garbage_are_ignored(
    client: SnmpClient, fake_agent: tuple[FakeAgent, int]
) -> None:
    agent, port = fake_agent
    oid = (1, 3, 6, 1, 2, 1, 1, 5, 0)
    task = asyncio.create_task(client.get(LOCALHOST, port, "public", V2C, [oid], 2.0, 0))
    data, addr = await agent.received.get()
    rid = decode_message(data).pdu.request_id
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as other:
        other.bind((LOCALHOST, 0))
        other.sendto(_reply(rid, ((oid, b"spoofed port"),)), addr)
    agent.send(_reply(rid ^ 1, ((oid, b"unknown id"),)), addr)
    agent.send(_reply(rid, ((oid, b"v1 reply to v2c"),), version=V1), addr)
    agent.send(_reply(rid, ((oid, b"a request"),), pdu_type=PduType.GET_REQUEST), addr)
    agent.send(b"\x30\x03\x02\x01", addr)
    await asyncio.sleep(0.1)
    assert not task.done()
    agent.send(_reply(rid, ((oid, b"real"),)), addr)
    assert await task == [(oid, b"real")]
    assert client.stats.unmatched == 4 and client.stats.malformed == 1
    agent.send(_reply(rid, ((oid, b"late duplicate"),)), addr)
    await asyncio.sleep(0.05)
    assert client.stats.unmatched == 5


async def test_retry_resends_the_same_request_id(
    client: SnmpClient, fake_agent: tuple[FakeAgent, int]
) -> None:
    agent, port = fake_agent
    oid = (1, 3, 6, 1, 2, 1, 1, 3, 0)
    task = asyncio.create_task(client.get(LOCALHOST, port, "public", V2C, [oid], 0.2, 3))
    first, _ = await agent.received.get()  # dropped, as if lost on the wire
    second, addr = await agent.received.get()
    assert first == second
    agent.send(_reply(decode_message(second).pdu.request_id, ((oid, TimeTicks(7)),)), addr)
    assert await task == [(oid, TimeTicks(7))]
    assert client.stats.retries == 1 and client.stats.timeouts == 0


async def test_error_status_raises_with_name_index_and_oid(
    client: SnmpClient, fake_agent: tuple[FakeAgent, int]
) -> None:
    agent, port = fake_agent
    oids = [(1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 1, 2, 1, 1, 2, 0)]
    for status, index, oid in ((1, 0, None), (2, 2, oids[1]), (5, 1, oids[0]), (99, 7, None)):
        task = asyncio.create_task(client.get(LOCALHOST, port, "public", V1, oids, 2.0, 0))
        data, addr = await agent.received.get()
        request = decode_message(data)
        agent.send(_reply(request.pdu.request_id, request.pdu.varbinds, status, index, V1), addr)
        with pytest.raises(SnmpErrorStatus) as err:
            await task
        assert (err.value.status, err.value.index, err.value.oid) == (status, index, oid)
        assert err.value.name == {1: "tooBig", 2: "noSuchName", 5: "genErr"}.get(status, "error99")
        assert err.value.response.pdu.request_id == request.pdu.request_id


async def test_wrong_varbind_count_is_an_error(
    client: SnmpClient, fake_agent: tuple[FakeAgent, int]
) -> None:
    agent, port = fake_agent
    oids = ["1.3.6.1.1.0", "1.3.6.1.2.0"]
    task = asyncio.create_task(client.get(LOCALHOST, port, "public", V2C, oids, 2.0, 0))
    data, addr = await agent.received.get()
    agent.send(_reply(decode_message(data).pdu.request_id, (((1, 3, 6, 1, 1, 0), 1),)), addr)
    with pytest.raises(SnmpError, match="answered 1 varbinds to 2"):
        await task


async def test_cancel_and_close_clean_up(
    client: SnmpClient, fake_agent: tuple[FakeAgent, int]
) -> None:
    _, port = fake_agent
    task = asyncio.create_task(client.get(LOCALHOST, port, "public", V2C, ["1.3.6.1.1.0"], 5, 0))
    await asyncio.sleep(0.05)
    assert client.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert client.in_flight == 0
    task = asyncio.create_task(client.get(LOCALHOST, port, "public", V2C, ["1.3.6.1.1.0"], 5, 0))
    await asyncio.sleep(0.05)
    client.close()
    with pytest.raises(SnmpError, match="closed"):
        await task
    with pytest.raises(SnmpError, match="closed"):
        await client.get(LOCALHOST, port, "public", V2C, ["1.3.6.1.1.0"], 5, 0)


async def test_one_socket_with_enlarged_receive_buffer(client: SnmpClient) -> None:
    size = client.receive_buffer()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as fresh:
        default = fresh.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
        fresh.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)  # capped by rmem_max
        with contextlib.suppress(OSError):  # SO_RCVBUFFORCE: beyond rmem_max if privileged
            fresh.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_RCVBUFFORCE", 33), 4 << 20)
        allowed = fresh.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
    assert size is not None and size == allowed
    if allowed > default:
        assert size > default
    sources: list[tuple[Any, ...]] = []

    def recording(request: Message) -> Message | None:
        return respond(request, Mib({"1.3.6.1.2.1.1.5.0": b"x"}))

    agents = []
    for _ in range(3):
        agent = await serve_snmp(LOCALHOST, 0, recording)
        agents.append(agent)
    try:
        for agent in agents:
            port = agent.get_extra_info("sockname")[1]
            await client.get(LOCALHOST, port, "public", V2C, ["1.3.6.1.2.1.1.5.0"], 2, 0)
            local = client.local_address()
            assert local is not None
            sources.append(local)
    finally:
        for agent in agents:
            agent.close()
    assert len(set(sources)) == 1  # every target shares the one socket


async def test_ipv6_target_uses_its_own_socket() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    mib = Mib({"1.3.6.1.2.1.1.5.0": b"v6"})
    try:
        server = await serve_snmp("::1", 0, mib_handler(mib))
    except OSError:
        pytest.skip("::1 not available")
    port = server.get_extra_info("sockname")[1]
    try:
        async with SnmpClient() as c:
            got = await c.get("::1", port, "public", V2C, ["1.3.6.1.2.1.1.5.0"], 2, 0)
            assert got == [((1, 3, 6, 1, 2, 1, 1, 5, 0), b"v6")]
            assert c.local_address(socket.AF_INET6) is not None
    finally:
        server.close()


async def test_hostnames_are_resolved(client: SnmpClient) -> None:
    mib = Mib({"1.3.6.1.2.1.1.5.0": b"named"})
    server = await serve_snmp(LOCALHOST, 0, mib_handler(mib))
    port = server.get_extra_info("sockname")[1]
    try:
        try:
            got = await client.get("localhost", port, "public", V2C, ["1.3.6.1.2.1.1.5.0"], 2, 0)
        except SnmpTimeout:
            pytest.skip("localhost resolves to ::1 first here")
        assert got == [((1, 3, 6, 1, 2, 1, 1, 5, 0), b"named")]
    finally:
        server.close()


# ---------------------------------------------------------------------------------------------
# agent side: respond() as a pure function

SIM: dict[str, Value] = {
    "1.3.6.1.2.1.1.1.0": b"dcim simulated PDU",
    "1.3.6.1.2.1.1.3.0": TimeTicks(4242),
    "1.3.6.1.2.1.1.5.0": b"sim-pdu-01",
    **{f"1.3.6.1.4.1.99999.3.1.1.{r}": r for r in range(1, 6)},
    **{f"1.3.6.1.4.1.99999.3.1.2.{r}": Gauge32(1000 * r) for r in range(1, 6)},
    **{f"1.3.6.1.4.1.99999.3.1.3.{r}": Counter64(2**40 * r) for r in range(1, 6)},
    "1.3.6.1.4.1.99999.4.0": IPv4Address("192.0.2.7"),
    "1.3.6.1.4.1.99999.5.0": (1, 3, 6, 1, 4, 1, 99999),
    "1.3.6.1.4.1.99999.6.0": Counter32(2**32 - 1),
    "1.3.6.1.4.1.99999.7.0": -(2**31),
    "1.3.6.1.4.1.99999.8.0": Opaque(b"\x9f\x78\x04\x3f\x80\x00\x00"),
    "1.3.6.1.4.1.99999.9.0": None,
}


def _request(pdu: Pdu, version: int = V2C, community: bytes = b"public") -> Message:
    # through the wire codec, as serve_snmp would deliver it
    return decode_message(encode_message(version, community, pdu))


def _get(oids: list[str], pdu_type: PduType = PduType.GET_REQUEST) -> Pdu:
    return Pdu(pdu_type, 77, 0, 0, tuple((parse_oid(o), None) for o in oids))


def test_respond_get_v2c_and_v1() -> None:
    mib = Mib(SIM)
    r = respond(_request(_get(["1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.5.1", "1.3.6.1.2.1.1.9.0",
                               "1.3.6.1.2.1.1"])), mib)  # fmt: skip
    assert r is not None and r.pdu.type is PduType.RESPONSE and r.pdu.request_id == 77
    assert [v for _, v in r.pdu.varbinds] == [b"sim-pdu-01", NO_SUCH_INSTANCE, NO_SUCH_OBJECT,
                                              NO_SUCH_OBJECT]  # fmt: skip
    v1 = respond(_request(_get(["1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.9.0"]), V1), mib)
    assert v1 is not None and (v1.pdu.error_status, v1.pdu.error_index) == (2, 2)
    assert v1.pdu.varbinds == _get(["1.3.6.1.2.1.1.5.0", "1.3.6.1.2.1.1.9.0"]).varbinds
    # a v1 manager must not see Counter64: noSuchName on GET
    c64 = respond(_request(_get(["1.3.6.1.4.1.99999.3.1.3.1"]), V1), mib)
    assert c64 is not None and c64.pdu.error_status == ErrorStatus.noSuchName


def test_respond_get_next_v2c_and_v1() -> None:
    mib = Mib(SIM)
    pdu = _get(["1.3.6.1.2.1.1.1.0", "1.3.6.1.4.1.99999.3.1.2.5", "1.3.6.1.4.1.99999.9.0",
                "0.0"], PduType.GET_NEXT_REQUEST)  # fmt: skip
    r = respond(_request(pdu), mib)
    assert r is not None
    assert r.pdu.varbinds == (
        ((1, 3, 6, 1, 2, 1, 1, 3, 0), TimeTicks(4242)),
        ((1, 3, 6, 1, 4, 1, 99999, 3, 1, 3, 1), Counter64(2**40)),
        ((1, 3, 6, 1, 4, 1, 99999, 9, 0), END_OF_MIB_VIEW),
        ((1, 3, 6, 1, 2, 1, 1, 1, 0), b"dcim simulated PDU"),
    )
    # v1 skips the Counter64 column and reports the end with noSuchName
    v1 = respond(_request(pdu, V1), mib)
    assert v1 is not None and v1.pdu.error_status == 2 and v1.pdu.error_index == 3
    last_gauge = _get(["1.3.6.1.4.1.99999.3.1.2.5"], PduType.GET_NEXT_REQUEST)
    skip = respond(_request(last_gauge, V1), mib)
    assert skip is not None
    assert skip.pdu.varbinds == (((1, 3, 6, 1, 4, 1, 99999, 4, 0), IPv4Address("192.0.2.7")),)


def test_respond_get_bulk() -> None:
    mib = Mib(SIM)
    pdu = bulk_pdu(5, 1, 3, [((1, 3, 6, 1, 2, 1, 1, 1, 0), None),
                             ((1, 3, 6, 1, 4, 1, 99999, 3, 1, 1), None),
                             ((1, 3, 6, 1, 4, 1, 99999, 3, 1, 2), None)])  # fmt: skip
    r = respond(_request(pdu), mib)
    assert r is not None and r.pdu.error_status == 0
    assert [format_oid(o) for o, _ in r.pdu.varbinds] == [
        "1.3.6.1.2.1.1.3.0",
        "1.3.6.1.4.1.99999.3.1.1.1", "1.3.6.1.4.1.99999.3.1.2.1",
        "1.3.6.1.4.1.99999.3.1.1.2", "1.3.6.1.4.1.99999.3.1.2.2",
        "1.3.6.1.4.1.99999.3.1.1.3", "1.3.6.1.4.1.99999.3.1.2.3",
    ]  # fmt: skip
    # near the end: endOfMibView fills the exhausted columns, then repetitions stop
    end = respond(_request(bulk_pdu(6, 0, 10, [((1, 3, 6, 1, 4, 1, 99999, 8, 0), None),
                                               ((1, 3, 6, 1, 4, 1, 99999, 9, 0), None)])), mib)  # fmt: skip
    assert end is not None
    assert end.pdu.varbinds == (
        ((1, 3, 6, 1, 4, 1, 99999, 9, 0), None),
        ((1, 3, 6, 1, 4, 1, 99999, 9, 0), END_OF_MIB_VIEW),
        ((1, 3, 6, 1, 4, 1, 99999, 9, 0), END_OF_MIB_VIEW),
        ((1, 3, 6, 1, 4, 1, 99999, 9, 0), END_OF_MIB_VIEW),
    )
    # GetBulk in a v1 message, and max-repetitions 0 / negative non-repeaters
    assert respond(Message(V1, b"public", pdu), mib) is None
    zero = respond(_request(bulk_pdu(7, 5, 0, [((1, 3), None)])), mib)
    assert zero is not None
    assert zero.pdu.varbinds == (((1, 3, 6, 1, 2, 1, 1, 1, 0), b"dcim simulated PDU"),)


def test_respond_too_big_and_bulk_truncation() -> None:
    mib = Mib({f"1.3.6.1.4.1.99999.1.{i}.0": b"y" * 100 for i in range(1, 40)})
    oids = [f"1.3.6.1.4.1.99999.1.{i}.0" for i in range(1, 40)]
    big = respond(_request(_get(oids)), mib, max_size=1472)
    assert big is not None and big.pdu.error_status == ErrorStatus.tooBig
    assert big.pdu.error_index == 0 and big.pdu.varbinds == ()
    v1 = respond(_request(_get(oids), V1), mib, max_size=1472)
    assert v1 is not None and v1.pdu.error_status == ErrorStatus.tooBig
    assert len(v1.pdu.varbinds) == 39  # v1 echoes the request's varbinds
    assert respond(_request(_get(oids), V1), mib, max_size=100) is None  # even that is too big
    fits = respond(_request(_get(oids[:5])), mib)
    assert fits is not None and fits.pdu.error_status == 0 and len(fits.pdu.varbinds) == 5
    bulk = respond(_request(bulk_pdu(1, 0, 39, [((1, 3, 6, 1, 4, 1, 99999, 1), None)])), mib)
    assert bulk is not None and bulk.pdu.error_status == 0
    data = encode_message(bulk.version, bulk.community, bulk.pdu)
    assert len(data) <= 1472 and 5 < len(bulk.pdu.varbinds) < 39
    one_more = Pdu(PduType.RESPONSE, 1, 0, 0, tuple(mib.items())[: len(bulk.pdu.varbinds) + 1])
    assert len(encode_message(V2C, b"public", one_more)) > 1472  # dropped only what did not fit
    tiny = respond(_request(bulk_pdu(1, 0, 39, [((1, 3, 6, 1, 4, 1, 99999, 1), None)])), mib,
                   max_size=60)  # fmt: skip
    assert tiny is not None and tiny.pdu.error_status == ErrorStatus.tooBig


def test_respond_community_set_and_non_requests() -> None:
    mib = Mib(SIM)
    assert respond(_request(_get(["1.3.6.1.2.1.1.5.0"]), community=b"private"), mib) is None
    ok = respond(_request(_get(["1.3.6.1.2.1.1.5.0"]), community=b"b"), mib, frozenset({b"a", b"b"}))
    assert ok is not None and ok.community == b"b"
    assert respond(_request(_get(["1.3.6.1.2.1.1.5.0"]), community=b"x"), mib, None) is not None
    set_pdu = Pdu(PduType.SET_REQUEST, 1, 0, 0, (((1, 3, 6, 1, 2, 1, 1, 5, 0), b"new"),))
    v2 = respond(_request(set_pdu), mib)
    assert v2 is not None and (v2.pdu.error_status, v2.pdu.error_index) == (17, 1)
    v1 = respond(_request(set_pdu, V1), mib)
    assert v1 is not None and (v1.pdu.error_status, v1.pdu.error_index) == (2, 1)
    assert mib[(1, 3, 6, 1, 2, 1, 1, 5, 0)] == b"sim-pdu-01"
    assert respond(_request(Pdu(PduType.RESPONSE, 1)), mib) is None
    assert respond(_request(Pdu(PduType.REPORT, 1)), mib) is None


def test_mib_updates_keep_order() -> None:
    mib = Mib({"1.3.6.1.2.1.1.5.0": b"a"})
    mib["1.3.6.1.2.1.1.1.0"] = b"first"
    mib[(1, 3, 6, 1, 2, 1, 1, 5, 0)] = b"b"
    assert list(mib) == [(1, 3, 6, 1, 2, 1, 1, 1, 0), (1, 3, 6, 1, 2, 1, 1, 5, 0)]
    assert len(mib) == 2 and mib[(1, 3, 6, 1, 2, 1, 1, 5, 0)] == b"b"
    assert mib.next_after((1, 3, 6, 1, 2, 1, 1, 1, 0)) == ((1, 3, 6, 1, 2, 1, 1, 5, 0), b"b")


OID_ST = st.lists(st.integers(0, 6), min_size=0, max_size=5).map(lambda t: (1, 3, *t))


@settings(max_examples=300, deadline=None)
@given(st.sets(OID_ST, max_size=30), st.lists(OID_ST, min_size=1, max_size=4),
       st.integers(0, 4), st.integers(0, 6))  # fmt: skip
def test_get_next_and_bulk_agree_with_brute_force(
    keys: set[OID], queries: list[OID], non_repeaters: int, max_repetitions: int
) -> None:
    mib = Mib({k: i for i, k in enumerate(sorted(keys))})

    def next_of(oid: OID) -> VarBind:
        later = [k for k in keys if k > oid]  # tuple order is SNMP's lexicographic order
        return (min(later), mib[min(later)]) if later else (oid, END_OF_MIB_VIEW)

    nxt = respond(_request(Pdu(PduType.GET_NEXT_REQUEST, 1, 0, 0,
                               tuple((q, None) for q in queries))), mib)  # fmt: skip
    assert nxt is not None and list(nxt.pdu.varbinds) == [next_of(q) for q in queries]

    bulk = respond(_request(bulk_pdu(1, non_repeaters, max_repetitions,
                                     [(q, None) for q in queries])), mib, max_size=65000)  # fmt: skip
    assert bulk is not None
    n = min(non_repeaters, len(queries))
    expected = [next_of(q) for q in queries[:n]]
    cursors = list(queries[n:])
    for _ in range(max_repetitions if cursors else 0):
        row = [next_of(c) for c in cursors]
        expected += row
        cursors = [oid for oid, _ in row]
        if all(v is END_OF_MIB_VIEW for _, v in row):
            break
    assert list(bulk.pdu.varbinds) == expected


# ---------------------------------------------------------------------------------------------
# agent side over UDP: our client, pysnmp and net-snmp's tools all read the same answers


@pytest.fixture
async def sim_agent() -> AsyncIterator[tuple[Mib, int]]:
    mib = Mib(SIM)
    transport = await serve_snmp(LOCALHOST, 0, mib_handler(mib))
    try:
        yield mib, transport.get_extra_info("sockname")[1]
    finally:
        transport.close()


async def test_served_mib_via_our_client_and_pysnmp(
    sim_agent: tuple[Mib, int], client: SnmpClient
) -> None:
    mib, port = sim_agent
    everything = list(mib)
    ours = await client.get(LOCALHOST, port, "public", V2C, everything, 2, 0)
    assert typed(ours) == typed(list(mib.items()))
    assert typed(ours) == typed(await pysnmp_query(port, everything))
    v1_oids = [o for o, v in mib.items() if not isinstance(v, Counter64)]
    assert typed(await pysnmp_query(port, v1_oids, version=V1)) == typed(
        await client.get(LOCALHOST, port, "public", V1, v1_oids, 2, 0)
    )
    starts = [(1, 3, 6, 1, 2, 1), (1, 3, 6, 1, 4, 1, 99999, 3, 1, 2, 5), (1, 3, 6, 1, 4, 1, 99999, 8, 0)]
    ours_next = await client.get_next(LOCALHOST, port, "public", V2C, starts, 2, 0)
    assert typed(ours_next) == typed(await pysnmp_query(port, starts, op="next"))
    ours_bulk = await client.get_bulk(LOCALHOST, port, "public", V2C, starts, 1, 6, 2, 0)
    assert typed(ours_bulk) == typed(await pysnmp_query(port, starts, op="bulk", nr=1, mr=6))
    assert ours_bulk[-1][1] is END_OF_MIB_VIEW


async def test_served_mib_is_silent_to_wrong_community_and_garbage(
    sim_agent: tuple[Mib, int], client: SnmpClient
) -> None:
    _, port = sim_agent
    with pytest.raises(SnmpTimeout):
        await client.get(LOCALHOST, port, "private", V2C, ["1.3.6.1.2.1.1.5.0"], 0.2, 0)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.sendto(b"\x30\x02\x05\x00", (LOCALHOST, port))
    got = await client.get(LOCALHOST, port, "public", V2C, ["1.3.6.1.2.1.1.5.0"], 2, 0)
    assert got == [((1, 3, 6, 1, 2, 1, 1, 5, 0), b"sim-pdu-01")]


async def test_served_handler_errors_do_not_stop_the_agent(client: SnmpClient) -> None:
    calls: list[Message] = []

    def handler(request: Message) -> Message | None:
        calls.append(request)
        if len(calls) == 1:
            raise RuntimeError("simulated handler bug")
        return respond(request, Mib({"1.3.6.1.2.1.1.5.0": b"ok"}))

    transport = await serve_snmp(LOCALHOST, 0, handler)
    port = transport.get_extra_info("sockname")[1]
    try:
        with pytest.raises(SnmpTimeout):
            await client.get(LOCALHOST, port, "public", V2C, ["1.3.6.1.2.1.1.5.0"], 0.2, 0)
        got = await client.get(LOCALHOST, port, "public", V2C, ["1.3.6.1.2.1.1.5.0"], 2, 0)
        assert got == [((1, 3, 6, 1, 2, 1, 1, 5, 0), b"ok")]
    finally:
        transport.close()


def _parse_netsnmp(out: bytes) -> list[tuple[OID, str]]:
    rows = []
    for line in out.decode().splitlines():
        if " = " in line:
            oid, rest = line.split(" = ", 1)
            rows.append((parse_oid(oid), rest.split(":", 1)[0]))
    return rows


NETSNMP_TYPE = {int: "INTEGER", bytes: "STRING", Counter32: "Counter32", Gauge32: "Gauge32",
                TimeTicks: "Timeticks", Counter64: "Counter64", IPv4Address: "IpAddress",
                tuple: "OID", Opaque: "Opaque", type(None): "NULL"}  # fmt: skip


async def test_served_mib_via_snmpbulkwalk_and_snmpwalk_v1(sim_agent: tuple[Mib, int]) -> None:
    mib, port = sim_agent

    async def run(*args: str) -> bytes:
        proc = await asyncio.create_subprocess_exec(
            *args, "-c", "public", "-On", "-m", "", "-t", "2", "-r", "0",
            f"{LOCALHOST}:{port}", ".1.3.6.1", stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
        assert proc.returncode == 0
        return out

    rows = _parse_netsnmp(await run("snmpbulkwalk", "-v2c", "-Cr7"))
    assert [oid for oid, _ in rows[: len(mib)]] == list(mib)
    assert [kind for _, kind in rows[: len(mib)]] == [NETSNMP_TYPE[type(v)] for _, v in mib.items()]
    # net-snmp prints the endOfMibView that ends a walk of the whole tree
    end = "No more variables left in this MIB View (It is past the end of the MIB tree)"
    assert rows[len(mib) :] == [(list(mib)[-1], end)]
    v1_rows = _parse_netsnmp(await run("snmpwalk", "-v1"))
    assert [oid for oid, _ in v1_rows] == [o for o, v in mib.items() if not isinstance(v, Counter64)]


async def test_snmpbulkwalk_with_big_repetitions_gets_truncated_pages() -> None:
    # 100 rows of 60-byte strings cannot fit one 1472-byte reply: pages are cut, walk completes
    mib = Mib({f"1.3.6.1.4.1.99999.2.1.{i}": b"z" * 60 for i in range(1, 101)})
    transport = await serve_snmp(LOCALHOST, 0, mib_handler(mib))
    port = transport.get_extra_info("sockname")[1]
    try:
        proc = await asyncio.create_subprocess_exec(
            "snmpbulkwalk", "-v2c", "-c", "public", "-On", "-m", "", "-Cr100", "-t", "2", "-r", "0",
            f"{LOCALHOST}:{port}", ".1.3.6.1.4.1.99999.2", stdout=asyncio.subprocess.PIPE,
        )  # fmt: skip
        out, _ = await proc.communicate()
    finally:
        transport.close()
    rows = _parse_netsnmp(out)
    assert [oid for oid, _ in rows[:-1]] == list(mib)
    assert rows[-1][1].startswith("No more variables left")
