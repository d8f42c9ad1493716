"""The simulator's SNMP agent: a sorted read-only MIB, a pure responder and a UDP server.

It speaks through the same codec as dcim's client (dcim/snmp/codec.py), so a round trip
through both is a test of the codec; real agents (snmpd, snmpsim) test it independently.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from bisect import bisect_left, bisect_right, insort
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Final, TypeAlias, cast

from dcim.snmp.client import DEFAULT_MAX_SIZE, DEFAULT_RCVBUF, OidLike, as_oid, udp_socket
from dcim.snmp.codec import (
    END_OF_MIB_VIEW,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    OID,
    V1,
    Counter64,
    ErrorStatus,
    Message,
    Pdu,
    PduType,
    SnmpDecodeError,
    Value,
    VarBind,
    VarBindException,
    decode_message,
    encode_message,
    fit_varbinds,
)

log = logging.getLogger(__name__)

Handler: TypeAlias = Callable[[Message], Message | None]


class Mib:
    """OID -> value table kept sorted, so GETNEXT is a bisect (values may be replaced)."""

    __slots__ = ("_keys", "_values")

    def __init__(self, values: Mapping[OID, Value] | Mapping[str, Value] | None = None) -> None:
        self._values: dict[OID, Value] = {}
        for key, value in (values or {}).items():
            self._values[as_oid(key)] = value
        self._keys = sorted(self._values)

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, oid: object) -> bool:
        return oid in self._values

    def __iter__(self) -> Iterator[OID]:
        return iter(self._keys)

    def __getitem__(self, oid: OID) -> Value:
        return self._values[oid]

    def __setitem__(self, oid: OidLike, value: Value) -> None:
        key = as_oid(oid)
        if key not in self._values:
            insort(self._keys, key)
        self._values[key] = value

    def items(self) -> Iterator[VarBind]:
        """All (oid, value) pairs in OID order."""
        return ((k, self._values[k]) for k in self._keys)

    def next_after(self, oid: OID, skip: Callable[[Value], bool] | None = None) -> VarBind | None:
        """The first binding lexicographically after `oid` (not satisfying skip), or None."""
        keys = self._keys
        i = bisect_right(keys, oid)
        while i < len(keys):
            value = self._values[keys[i]]
            if skip is None or not skip(value):
                return keys[i], value
            i += 1
        return None

    def has_under(self, prefix: OID) -> bool:
        """Whether some binding lies strictly below `prefix`."""
        keys = self._keys
        i = bisect_left(keys, prefix)
        if i < len(keys) and keys[i] == prefix:
            i += 1
        return i < len(keys) and keys[i][: len(prefix)] == prefix


def _hidden_in_v1(value: Value) -> bool:
    # RFC 3584 section 4.2.2.1: a v1 manager must never see Counter64 or v2 exceptions
    return isinstance(value, Counter64 | VarBindException)


def _missing(mib: Mib, oid: OID) -> VarBindException:
    # Without MIB definitions we guess object boundaries: a GET on a subtree is noSuchObject,
    # a sibling of an existing instance (same parent arc) is noSuchInstance
    if mib.has_under(oid):
        return NO_SUCH_OBJECT
    return NO_SUCH_INSTANCE if mib.has_under(oid[:-1]) else NO_SUCH_OBJECT


def _resp(request: Message, status: int, index: int, varbinds: Iterable[VarBind]) -> Message:
    pdu = Pdu(PduType.RESPONSE, request.pdu.request_id, status, index, tuple(varbinds))
    return Message(request.version, request.community, pdu)


def _v1_error(request: Message, status: ErrorStatus, index: int) -> Message:
    return _resp(request, status, index, request.pdu.varbinds)


def _answer(request: Message, mib: Mib) -> Message:
    pdu = request.pdu
    v1 = request.version == V1
    skip = _hidden_in_v1 if v1 else None
    out: list[VarBind] = []
    if pdu.type is PduType.GET_REQUEST:
        for i, (oid, _) in enumerate(pdu.varbinds, 1):
            if oid in mib and not (v1 and _hidden_in_v1(mib[oid])):
                out.append((oid, mib[oid]))
            elif v1:
                return _v1_error(request, ErrorStatus.noSuchName, i)
            else:
                out.append((oid, _missing(mib, oid)))
    elif pdu.type is PduType.GET_NEXT_REQUEST:
        for i, (oid, _) in enumerate(pdu.varbinds, 1):
            found = mib.next_after(oid, skip)
            if found is None:
                if v1:
                    return _v1_error(request, ErrorStatus.noSuchName, i)
                found = (oid, END_OF_MIB_VIEW)
            out.append(found)
    elif pdu.type is PduType.GET_BULK_REQUEST:
        out = _bulk(pdu, mib)
    else:  # SetRequest: the simulator is read-only
        status = ErrorStatus.noSuchName if v1 else ErrorStatus.notWritable
        if pdu.varbinds:
            return _resp(request, status, 1, pdu.varbinds)
    return _resp(request, 0, 0, out)


def _bulk(pdu: Pdu, mib: Mib) -> list[VarBind]:
    # RFC 3416 section 4.2.3
    varbinds = pdu.varbinds
    n = min(max(pdu.non_repeaters, 0), len(varbinds))
    m = max(pdu.max_repetitions, 0)
    out: list[VarBind] = []
    for oid, _ in varbinds[:n]:
        out.append(mib.next_after(oid) or (oid, END_OF_MIB_VIEW))
    cursors = [oid for oid, _ in varbinds[n:]]
    for _ in range(m if cursors else 0):
        ended = 0
        for j, oid in enumerate(cursors):
            found = mib.next_after(oid)
            if found is None:
                found = (oid, END_OF_MIB_VIEW)
                ended += 1
            out.append(found)
            cursors[j] = found[0]
        if ended == len(cursors):
            break  # every column is exhausted: further repetitions would only repeat that
    return out


def respond(
    request: Message,
    mib: Mib,
    community: bytes | frozenset[bytes] | None = b"public",
    max_size: int = DEFAULT_MAX_SIZE,
) -> Message | None:
    """Answer a decoded request from `mib` like a read-only agent; None means drop it."""
    if community is not None and (
        request.community != community
        if isinstance(community, bytes)
        else request.community not in community
    ):
        return None  # RFC 3584: unknown community is silently dropped
    pdu = request.pdu
    if pdu.type not in _REQUESTS or (request.version == V1 and pdu.type not in _V1_REQUESTS):
        return None
    answer = _answer(request, mib)
    got = answer.pdu.varbinds
    fit = fit_varbinds(answer.version, answer.community, answer.pdu, max_size)
    if fit == len(got):
        return answer
    if pdu.type is PduType.GET_BULK_REQUEST and fit > 0:
        return _resp(request, 0, 0, got[:fit])  # RFC 3416: drop trailing varbinds
    # tooBig: v2c sends an empty list, v1 echoes the request's varbinds (RFC 1157 4.1.2)
    echoed = request.pdu.varbinds if answer.version == V1 else ()
    too_big = _resp(request, ErrorStatus.tooBig, 0, echoed)
    if fit_varbinds(too_big.version, too_big.community, too_big.pdu, max_size) < len(echoed):
        return None
    return too_big


_REQUESTS: Final = frozenset(
    {
        PduType.GET_REQUEST,
        PduType.GET_NEXT_REQUEST,
        PduType.GET_BULK_REQUEST,
        PduType.SET_REQUEST,
    }
)
_V1_REQUESTS: Final = _REQUESTS - {PduType.GET_BULK_REQUEST}


class _AgentProtocol(asyncio.DatagramProtocol):
    def __init__(self, handler: Handler) -> None:
        self._handler = handler
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Python 3.11's selector datagram transport does not subclass DatagramTransport
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            request = decode_message(data)
        except SnmpDecodeError:
            return  # an agent drops what it cannot parse (snmpInASNParseErrs)
        try:
            reply = self._handler(request)
            if reply is None:
                return
            out = encode_message(reply.version, reply.community, reply.pdu)
        except Exception:
            # one bad request or handler bug must not stop the simulator serving the rest
            log.exception("SNMP agent handler failed for a request from %s", addr)
            return
        if self._transport is not None:
            self._transport.sendto(out, addr)


async def serve_snmp(
    host: str, port: int, handler: Handler, *, rcvbuf: int = DEFAULT_RCVBUF
) -> asyncio.DatagramTransport:
    """Serve SNMP on UDP host:port (0 = any free port) with a synchronous handler."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = udp_socket(family, host, port, rcvbuf)
    transport, _ = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _AgentProtocol(handler), sock=sock
    )
    return transport


def mib_handler(
    mib: Mib,
    community: bytes | frozenset[bytes] | None = b"public",
    max_size: int = DEFAULT_MAX_SIZE,
) -> Handler:
    """A serve_snmp handler answering from `mib` via respond()."""

    def handle(request: Message) -> Message | None:
        return respond(request, mib, community, max_size)

    return handle
