"""Fast SNMP (v1, v2c, and v3 with USM) over asyncio UDP: a shared-socket manager client.

The client multiplexes every target over one UDP socket per address family and matches
replies by request-id (v3: msgID, the same number) and source address; retries and timeouts
run in loop callbacks, so an in-flight request costs a future, not a task. One timer per client
serves every request's deadline (armed for the earliest; requests share a timeout, so a new one
rarely needs re-arming): at a few hundred polls/s a TimerHandle scheduled and cancelled per
request was a measurable share of the per-packet cost.

SNMPv3: pass a `UsmUser` where v1/v2c take a community. The first request to an agent
discovers its engine ID, engineBoots and engineTime (RFC 3414 section 4), shared by every
request after it; an authenticated notInTimeWindow report re-synchronises the clock and the
request is sent once more, as is one whose agent changed its engine ID (replaced or reset).
Any other Report raises UsmError naming it (wrong digest, unknown user, ...). Answers that fail
the digest, the time window or decryption are dropped and counted, never trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import platform
import random
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence, Sized
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Final, TypeAlias

from dcim.snmp.codec import (
    OID,
    V1,
    V3,
    Message,
    MsgFlags,
    PduType,
    RequestTemplate,
    ScopedPdu,
    SnmpDecodeError,
    V3Message,
    VarBind,
    decode_message,
    decode_v3_message,
    error_status_name,
    parse_oid,
)
from dcim.snmp.errors import SnmpError, SnmpTimeout
from dcim.snmp.security import (
    EngineClock,
    UsmDrop,
    UsmError,
    UsmErrorKind,
    UsmSession,
    UsmUser,
    discovery_request,
    report_kind,
)

log = logging.getLogger(__name__)

OidLike: TypeAlias = OID | str

DEFAULT_RCVBUF: Final = 4 << 20
DEFAULT_MAX_SIZE: Final = 1472  # Ethernet MTU minus IPv4 and UDP headers (RFC 3417 advice)
_TEMPLATE_CACHE_MAX: Final = 4096


__all__ = ["SnmpError", "SnmpTimeout", "UsmError", "UsmErrorKind", "UsmUser"]

Credentials: TypeAlias = bytes | str | UsmUser  # a community (v1/v2c) or a USM user (v3)


class SnmpErrorStatus(SnmpError):
    """The agent answered with a non-zero error-status."""

    def __init__(
        self, status: int, index: int, oid: OID | None, response: Message | ScopedPdu
    ) -> None:
        self.status = status
        self.name = error_status_name(status)
        self.index = index  # 1-based into the request's varbinds; 0 = whole PDU
        self.oid = oid
        self.response = response
        where = f" at index {index} ({'.'.join(map(str, oid))})" if oid else ""
        super().__init__(f"SNMP error {self.name}{where}")


@dataclass(slots=True)
class ClientStats:
    """Counters a poller can export to see drops and retries."""

    sent: int = 0
    retries: int = 0
    timeouts: int = 0
    malformed: int = 0
    unmatched: int = 0  # unknown request-id, wrong source, wrong version or PDU type
    usm_dropped: int = 0  # v3 answers refused: digest, time window, decryption, level
    usm_discoveries: int = 0  # v3 engine discoveries (first contact, or engine ID changed)
    usm_resyncs: int = 0  # v3 requests re-sent after a notInTimeWindow report


@lru_cache(maxsize=1 << 16)
def _parse_cached(text: str) -> OID:
    return parse_oid(text)


def as_oid(oid: OidLike) -> OID:
    """Normalise dotted text or a sequence of ints to an OID tuple."""
    return _parse_cached(oid) if isinstance(oid, str) else tuple(oid)


# CPython does not export SO_RCVBUFFORCE; 33 is its value in asm-generic (x86, arm, riscv)
_SO_RCVBUFFORCE: Final[int | None] = getattr(
    socket,
    "SO_RCVBUFFORCE",
    33
    if sys.platform == "linux" and platform.machine() in {"x86_64", "aarch64", "riscv64"}
    else None,
)


def _sockopt_rcvbuf(sock: socket.socket, size: int) -> None:
    # SO_RCVBUFFORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN; plain SO_RCVBUF is
    # silently capped by that sysctl, which is still better than the default
    force = _SO_RCVBUFFORCE
    if force is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, force, size)
            return
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, size)


def udp_socket(family: int, host: str, port: int, rcvbuf: int) -> socket.socket:
    sock = socket.socket(family, socket.SOCK_DGRAM)
    try:
        _sockopt_rcvbuf(sock, rcvbuf)
        sock.setblocking(False)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


V3Answer: TypeAlias = tuple[V3Message, ScopedPdu]


_NOTED_MAX: Final = 4


def _note(pending: _Pending, why: str) -> None:
    if len(pending.dropped) >= _NOTED_MAX:
        del pending.dropped[0]
    pending.dropped.append(why)
    pending.refused += 1


class _Pending:
    __slots__ = (
        "deadline",
        "dropped",
        "fut",
        "host",
        "payload",
        "port",
        "refused",
        "retries_left",
        "sockaddr",
        "timeout",
        "transport",
        "v3",
        "version",
    )

    def __init__(
        self,
        fut: asyncio.Future[Any],
        transport: _UdpEndpoint,
        sockaddr: tuple[Any, ...],
        payload: bytes,
        version: int,
        timeout: float,
        retries: int,
        v3: UsmSession | None = None,
    ) -> None:
        self.fut = fut
        self.v3 = v3
        # why datagrams from this agent were refused while the request waited (the latest
        # few): undecodable ones, v3 answers failing the USM checks
        self.dropped: list[str] = []
        self.refused = 0
        self.transport = transport
        self.sockaddr = sockaddr
        self.host: str = sockaddr[0]
        self.port: int = sockaddr[1]
        self.payload = payload
        self.version = version
        self.timeout = timeout
        self.retries_left = retries
        self.deadline = 0.0  # loop time at which the current try has timed out


class _UdpEndpoint:
    """The client's UDP socket, read directly rather than through a datagram transport.

    asyncio's transport reads one datagram per event-loop turn into a fresh 256 KiB buffer
    (an mmap/munmap per packet in glibc); polling thousands of PDUs, that was a sixth of the
    CPU. Here every queued datagram is drained per wakeup into one reused 64 KiB buffer.
    """

    _DRAIN_MAX = 64  # datagrams per wakeup, so one busy socket cannot starve the loop

    def __init__(self, sock: socket.socket, on_datagram: Callable[[bytes, tuple[Any, ...]], None],
                 awaited: Sized = ()):
        self._sock = sock
        self._on_datagram = on_datagram
        self._awaited = awaited  # the requests in flight: how many answers can be queued
        self._buf = bytearray(65535)  # the largest UDP payload
        self._view = memoryview(self._buf)
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(sock.fileno(), self._readable)

    def _readable(self) -> None:
        # Read no more datagrams than requests await answers: at a low rate that is one, and
        # the recvfrom that would only fail with EAGAIN (a syscall and an exception per wakeup)
        # is skipped. The reader is level-triggered, so anything left wakes the loop again.
        for _ in range(min(self._DRAIN_MAX, max(1, len(self._awaited)))):
            try:
                size, addr = self._sock.recvfrom_into(self._buf)
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                # ICMP errors are not tied to a request id here; the request's timer handles it
                log.debug("SNMP socket error: %s", exc)
                continue
            self._on_datagram(bytes(self._view[:size]), addr)

    def sendto(self, data: bytes, addr: tuple[Any, ...]) -> None:
        """Send one datagram; a full send buffer drops it and the request's retry resends."""
        try:
            self._sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            log.debug("SNMP send buffer full; the retry timer will resend")
        except OSError as exc:
            log.debug("SNMP send to %s failed: %s", addr, exc)

    def get_extra_info(self, name: str) -> Any:
        """socket or sockname, like a transport's."""
        if name == "socket":
            return self._sock
        if name == "sockname":
            return self._sock.getsockname()
        return None

    def close(self) -> None:
        """Stop reading and close the socket."""
        if self._sock.fileno() >= 0:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()


class SnmpClient:
    """Shared-socket SNMPv1/v2c manager; use `async with SnmpClient() as c:` or call close()."""

    def __init__(
        self, *, bind_v4: str = "0.0.0.0", bind_v6: str = "::", rcvbuf: int = DEFAULT_RCVBUF
    ) -> None:
        self._bind: dict[int, str] = {socket.AF_INET: bind_v4, socket.AF_INET6: bind_v6}
        self._rcvbuf = rcvbuf
        self._transports: dict[int, _UdpEndpoint] = {}
        self._opening: dict[int, asyncio.Future[_UdpEndpoint]] = {}
        self._pending: dict[int, _Pending] = {}
        self._templates: dict[tuple[Any, ...], RequestTemplate] = {}
        self._addr_cache: dict[str, tuple[int, str]] = {}
        self._next_id = random.randrange(1, 0x7FFFFFFF)
        self._salt = random.getrandbits(64)  # AES IV salt: a counter from a random start
        self._engines: dict[tuple[Any, ...], EngineClock] = {}
        self._discovering: dict[tuple[Any, ...], asyncio.Future[EngineClock]] = {}
        self._sessions: dict[tuple[tuple[Any, ...], UsmUser], UsmSession] = {}
        self._timer: asyncio.TimerHandle | None = None  # the earliest deadline's, see _sweep
        self._timer_at = 0.0
        self._closed = False
        self.stats = ClientStats()

    async def __aenter__(self) -> SnmpClient:
        await self._transport(socket.AF_INET)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    @property
    def in_flight(self) -> int:
        """Requests currently awaiting a response."""
        return len(self._pending)

    def receive_buffer(self) -> int | None:
        """Effective SO_RCVBUF of the IPv4 socket (the kernel reports twice what it grants)."""
        transport = self._transports.get(socket.AF_INET)
        if transport is None:
            return None
        sock: socket.socket = transport.get_extra_info("socket")
        return int(sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF))

    def local_address(self, family: int = socket.AF_INET) -> tuple[Any, ...] | None:
        """(host, port) the socket of `family` is bound to, once opened."""
        transport = self._transports.get(family)
        return None if transport is None else transport.get_extra_info("sockname")

    def close(self) -> None:
        """Close the sockets and fail every in-flight request with SnmpError."""
        self._closed = True
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for pending in list(self._pending.values()):
            if not pending.fut.done():
                pending.fut.set_exception(SnmpError("SNMP client closed"))

    async def _transport(self, family: int) -> _UdpEndpoint:
        transport = self._transports.get(family)
        if transport is not None:
            return transport
        if self._closed:
            raise SnmpError("SNMP client closed")
        opening = self._opening.get(family)
        if opening is not None:
            return await asyncio.shield(opening)
        loop = asyncio.get_running_loop()
        opening = self._opening[family] = loop.create_future()
        try:
            sock = udp_socket(family, self._bind[family], 0, self._rcvbuf)
            transport = _UdpEndpoint(sock, self._on_datagram, self._pending)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                opening.cancel()
            else:
                opening.set_exception(exc)
                opening.exception()  # mark retrieved: waiters (if any) re-raise it themselves
            raise
        finally:
            del self._opening[family]
        if self._closed:  # close() ran while we were opening
            transport.close()
            opening.set_exception(SnmpError("SNMP client closed"))
            opening.exception()
            raise SnmpError("SNMP client closed")
        self._transports[family] = transport
        opening.set_result(transport)
        return transport

    async def _resolve(self, host: str, port: int) -> tuple[int, tuple[Any, ...]]:
        cached = self._addr_cache.get(host)
        if cached is None:
            try:
                ip = ipaddress.ip_address(host)
            except ValueError:
                # names are resolved every time (DNS may change); poll by address to skip this
                infos = await asyncio.get_running_loop().getaddrinfo(
                    host, port, type=socket.SOCK_DGRAM
                )
                if not infos:
                    raise SnmpError(f"cannot resolve {host!r}") from None
                info = infos[0]
                return int(info[0]), (str(info[4][0]), port, *info[4][2:])
            cached = (socket.AF_INET6 if ip.version == 6 else socket.AF_INET, str(ip))
            if len(self._addr_cache) < 65536:
                self._addr_cache[host] = cached
        family, addr = cached
        return family, ((addr, port) if family == socket.AF_INET else (addr, port, 0, 0))

    def _alloc_id(self) -> int:
        rid = self._next_id
        while rid in self._pending:
            rid = rid + 1 if rid < 0x7FFFFFFF else 1
        self._next_id = rid + 1 if rid < 0x7FFFFFFF else 1
        return rid

    def template(
        self,
        version: int,
        community: bytes | str,
        pdu_type: PduType,
        oids: Iterable[OidLike],
        non_repeaters: int = 0,
        max_repetitions: int = 0,
    ) -> RequestTemplate:
        """A cached pre-encoded request for these OIDs (what get/get_next/get_bulk use)."""
        # keyed by the OIDs as given (dotted text hashes once and is cached by the str), so a
        # poll that asks the same OIDs again parses nothing
        given = tuple(oids)
        key = (version, community, pdu_type, given, non_repeaters, max_repetitions)
        try:
            tpl = self._templates.get(key)
        except TypeError:  # OIDs given as lists: key by their parsed form
            key = (version, community, pdu_type, tuple(map(as_oid, given)), non_repeaters,
                   max_repetitions)  # fmt: skip
            tpl = self._templates.get(key)
        if tpl is None:
            tpl = RequestTemplate(
                version,
                community.encode() if isinstance(community, str) else community,
                pdu_type,
                tuple(as_oid(o) for o in given),
                non_repeaters,
                max_repetitions,
            )
            if len(self._templates) >= _TEMPLATE_CACHE_MAX:
                self._templates.clear()
            self._templates[key] = tpl
        return tpl

    async def _send(
        self,
        host: str,
        port: int,
        payload: Callable[[int], bytes],
        version: int,
        timeout: float,
        retries: int,
        v3: UsmSession | None = None,
    ) -> Any:
        """Send payload(request_id) and await what _on_datagram matches to it."""
        family, sockaddr = await self._resolve(host, port)
        transport = self._transports.get(family) or await self._transport(family)
        loop = asyncio.get_running_loop()
        rid = self._alloc_id()
        pending = _Pending(
            loop.create_future(),
            transport,
            sockaddr,
            payload(rid),
            version,
            timeout,
            max(0, retries),
            v3,
        )
        self._pending[rid] = pending
        try:
            transport.sendto(pending.payload, sockaddr)
            self.stats.sent += 1
            pending.deadline = deadline = loop.time() + timeout
            if self._timer is None or deadline < self._timer_at:
                self._arm(loop, deadline)
            return await pending.fut
        finally:
            # the timer stays armed: when it fires with nothing due it re-arms or stops
            del self._pending[rid]

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._sweep)
        self._timer_at = when

    def _sweep(self) -> None:
        """The client's timer: retry or fail every request whose deadline has come, then
        re-arm for the earliest one left (a scan of what is in flight, once per deadline)."""
        self._timer = None
        loop = asyncio.get_running_loop()
        # the loop runs a timer up to its clock resolution early; a millisecond covers that
        now = loop.time() + 1e-3
        earliest = float("inf")
        for rid, pending in list(self._pending.items()):
            if pending.fut.done():
                continue
            if pending.deadline <= now:
                self._expired(pending, rid, loop.time())
            if not pending.fut.done() and pending.deadline < earliest:
                earliest = pending.deadline
        if earliest != float("inf") and not self._closed:
            self._arm(loop, earliest)

    async def request(
        self,
        host: str,
        port: int,
        template: RequestTemplate,
        timeout: float = 1.0,
        retries: int = 1,
    ) -> Message:
        """Send a v1/v2c request and return the matching Response, whatever its error-status."""
        result: Message = await self._send(
            host, port, template.encode, template.version, timeout, retries
        )
        return result

    async def request_v3(
        self,
        host: str,
        port: int,
        user: UsmUser,
        template: RequestTemplate,
        timeout: float = 1.0,
        retries: int = 1,
    ) -> ScopedPdu:
        """Send a v3 request as `user` and return the Response's scopedPDU (any error-status);
        a Report raises UsmError, after one re-sync (notInTimeWindow) or re-discovery
        (unknownEngineID) retried transparently."""
        key = (host, port)
        for attempt in range(3):
            clock = self._engines.get(key) or await self._discover(key, timeout, retries)
            session = self._sessions.get((key, user))
            if session is None or session.clock is not clock:
                if len(self._sessions) >= 65536:
                    self._sessions.clear()
                session = self._sessions[key, user] = UsmSession(user, clock)

            def payload(rid: int, session: UsmSession = session) -> bytes:
                self._salt += 1
                return session.wrap(rid, template.encode_pdu(rid), self._salt, time.monotonic())

            try:
                answer: V3Answer = await self._send(
                    host, port, payload, V3, timeout, retries, session
                )
            except SnmpTimeout as exc:
                if not exc.refused and not session.answered:
                    await self._explain_v3_timeout(key, user, timeout, retries)
                raise
            msg, scoped = answer
            pdu = scoped.pdu
            if pdu.type is PduType.RESPONSE:
                session.answered = True
                return scoped
            kind, counter = report_kind(pdu)
            authenticated = bool(msg.flags & MsgFlags.AUTH.value)
            if kind is UsmErrorKind.NOT_IN_TIME_WINDOW and authenticated and attempt < 2:
                self.stats.usm_resyncs += 1  # unwrap() has set the clock from the report
                continue
            if kind is UsmErrorKind.UNKNOWN_ENGINE_ID and attempt < 2:
                self._engines.pop(key, None)
                continue
            raise UsmError(kind, f"{host}:{port} user {user.name.decode(errors='replace')}: "
                           f"{counter} report")
        raise AssertionError("unreachable")  # pragma: no cover

    async def _explain_v3_timeout(
        self, key: tuple[str, int], user: UsmUser, timeout: float, retries: int
    ) -> None:
        """A user the agent never answered timed out: if the agent still answers discovery,
        it is alive and drops this user's requests, which net-snmp does with what it cannot
        decrypt (it sends no decryptionError report): say so rather than 'timeout'."""
        if user.priv is None:
            return
        self._engines.pop(key, None)
        try:
            await self._discover(key, timeout, retries)
        except SnmpError:
            return  # the agent is gone: a plain timeout
        raise UsmError(
            UsmErrorKind.DECRYPTION_ERROR,
            f"{key[0]}:{key[1]} answers discovery but not user "
            f"{user.name.decode(errors='replace')}'s encrypted requests",
        )

    async def _discover(
        self, key: tuple[str, int], timeout: float, retries: int
    ) -> EngineClock:
        """Learn an agent's engine ID, boots and time; concurrent callers share one exchange."""
        waiting = self._discovering.get(key)
        if waiting is not None:
            return await asyncio.shield(waiting)
        fut: asyncio.Future[EngineClock] = asyncio.get_running_loop().create_future()
        self._discovering[key] = fut
        try:
            self.stats.usm_discoveries += 1
            answer: V3Answer = await self._send(
                key[0], key[1], discovery_request, V3, timeout, retries, UsmSession(None, None)
            )
            msg, scoped = answer
            usm = msg.usm
            if scoped.pdu.type is not PduType.REPORT or not usm.engine_id:
                raise SnmpError(f"{key[0]}:{key[1]} answered SNMPv3 discovery without its "
                                "engine ID")
            clock = EngineClock(usm.engine_id, usm.engine_boots, usm.engine_time,
                                time.monotonic())
            self._engines[key] = clock
            fut.set_result(clock)
            return clock
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                fut.cancel()
            else:
                fut.set_exception(exc)
                fut.exception()  # retrieved: every waiter re-raises it itself
            raise
        finally:
            del self._discovering[key]

    def _refused_from(self, addr: tuple[Any, ...], why: str) -> None:
        """Note a datagram that cannot be an answer on the requests waiting for its sender, so
        a device answering garbage is told from a silent one. Answers with a request id we are
        not waiting for are not noted: a late answer to a request given up looks the same."""
        for pending in self._pending.values():
            if pending.port == addr[1] and pending.host == addr[0] and not pending.fut.done():
                _note(pending, why)

    def _expired(self, pending: _Pending, rid: int, now: float) -> None:
        if pending.retries_left > 0:
            pending.retries_left -= 1
            self.stats.retries += 1
            # same request-id again, so a late reply to the first try still counts
            pending.transport.sendto(pending.payload, pending.sockaddr)
            pending.deadline = now + pending.timeout
            return
        self.stats.timeouts += 1
        text = f"no SNMP response from {pending.host}:{pending.port} (request {rid})"
        if pending.refused:
            text += f"; {pending.refused} answers refused, last: {pending.dropped[-1]}"
        last = pending.dropped[-1] if pending.dropped else ""
        pending.fut.set_exception(SnmpTimeout(text, pending.refused, last))

    def _on_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        # msgVersion right after the outer SEQUENCE's length: INTEGER 3 is SNMPv3
        at = 2 if len(data) < 2 or data[1] < 0x80 else 2 + (data[1] & 0x7F)
        if data[at : at + 3] == b"\x02\x01\x03":
            self._on_v3_datagram(data, addr)
            return
        try:
            msg = decode_message(data)
        except SnmpDecodeError as exc:
            self.stats.malformed += 1
            self._refused_from(addr, f"undecodable: {exc}")
            return
        pdu = msg.pdu
        pending = self._pending.get(pdu.request_id)
        if pending is None or pending.fut.done() or addr[1] != pending.port or addr[0] != pending.host:
            self.stats.unmatched += 1
            return
        if pdu.type is not PduType.RESPONSE or msg.version != pending.version:
            self.stats.unmatched += 1
            _note(pending, f"a {pdu.type.name} PDU of version {msg.version} is no answer")
            return
        pending.fut.set_result(msg)

    def _on_v3_datagram(self, data: bytes, addr: tuple[Any, ...]) -> None:
        try:
            msg = decode_v3_message(data)
        except SnmpDecodeError as exc:
            self.stats.malformed += 1
            self._refused_from(addr, f"undecodable: {exc}")
            return
        pending = self._pending.get(msg.msg_id)
        if (
            pending is None
            or pending.v3 is None
            or pending.fut.done()
            or addr[1] != pending.port
            or addr[0] != pending.host
        ):
            self.stats.unmatched += 1
            return
        try:
            scoped = pending.v3.unwrap(msg, data, time.monotonic())
        except UsmDrop as exc:
            log.debug("SNMPv3 answer from %s:%s dropped: %s", addr[0], addr[1], exc)
            self.stats.usm_dropped += 1
            _note(pending, str(exc))
            return
        pdu = scoped.pdu
        if pdu.type is PduType.REPORT or (
            pdu.type is PduType.RESPONSE and pdu.request_id == msg.msg_id
        ):
            pending.fut.set_result((msg, scoped))
        else:
            self.stats.unmatched += 1

    async def _varbinds(
        self,
        host: str,
        port: int,
        credentials: Credentials,
        version: int,
        pdu_type: PduType,
        oids: Sequence[OidLike],
        non_repeaters: int,
        max_repetitions: int,
        timeout: float,
        retries: int,
    ) -> list[VarBind]:
        if isinstance(credentials, UsmUser):
            tpl = self.template(V3, b"", pdu_type, oids, non_repeaters, max_repetitions)
            answer: Message | ScopedPdu = await self.request_v3(
                host, port, credentials, tpl, timeout, retries
            )
        else:
            if version == V3:
                raise ValueError("SNMPv3 needs a UsmUser, not a community")
            tpl = self.template(
                version, credentials, pdu_type, oids, non_repeaters, max_repetitions
            )
            answer = await self.request(host, port, tpl, timeout, retries)
        pdu = answer.pdu
        if pdu.error_status:
            index = pdu.error_index
            oid = tpl.oids[index - 1] if 0 < index <= len(tpl.oids) else None
            raise SnmpErrorStatus(pdu.error_status, index, oid, answer)
        if pdu_type is not PduType.GET_BULK_REQUEST and len(pdu.varbinds) != len(tpl.oids):
            raise SnmpError(
                f"{host}:{port} answered {len(pdu.varbinds)} varbinds to {len(tpl.oids)}"
            )
        return list(pdu.varbinds)

    async def get(
        self,
        host: str,
        port: int,
        community: Credentials,
        version: int,
        oids: Sequence[OidLike],
        timeout: float = 1.0,
        retries: int = 1,
    ) -> list[VarBind]:
        """GET; v2c/v3 misses come back as NO_SUCH_OBJECT/NO_SUCH_INSTANCE values.

        `community` is a community for v1/v2c or a UsmUser for v3 (then version is ignored).
        """
        return await self._varbinds(
            host, port, community, version, PduType.GET_REQUEST, oids, 0, 0, timeout, retries
        )

    async def get_next(
        self,
        host: str,
        port: int,
        community: Credentials,
        version: int,
        oids: Sequence[OidLike],
        timeout: float = 1.0,
        retries: int = 1,
    ) -> list[VarBind]:
        """GETNEXT; the end of the MIB is END_OF_MIB_VIEW (v2c/v3) or noSuchName (v1)."""
        return await self._varbinds(
            host, port, community, version, PduType.GET_NEXT_REQUEST, oids, 0, 0, timeout,
            retries,
        )  # fmt: skip

    async def get_bulk(
        self,
        host: str,
        port: int,
        community: Credentials,
        version: int,
        oids: Sequence[OidLike],
        non_repeaters: int = 0,
        max_repetitions: int = 10,
        timeout: float = 1.0,
        retries: int = 1,
    ) -> list[VarBind]:
        """GETBULK (v2c/v3 only); the flat varbind list as the agent returned it."""
        if version == V1 and not isinstance(community, UsmUser):
            raise ValueError("GETBULK does not exist in SNMPv1")
        return await self._varbinds(
            host, port, community, version, PduType.GET_BULK_REQUEST, oids, non_repeaters,
            max_repetitions, timeout, retries,
        )  # fmt: skip
