"""Hostile devices on loopback: a raw UDP SNMP responder and a raw TCP Modbus responder.

Both answer correctly from a table of values in mode "good", and misbehave in the other modes:

    garbage      random bytes instead of a response
    truncated    a correct response cut short
    huge-length  a response whose length fields claim far more bytes than follow
    wrong-id     a correct response to a different request (request id / transaction id)
    slow         a correct response after `delay` seconds
    silent       no response at all
    endless      SNMP: walks never end (ever-growing OIDs inside the column);
                 Modbus: an endless stream of bytes on the connection
    overflow     correct framing, values that overflow any scaling (`overflow` values)

The mode can be changed while running (`peer.mode = "silent"`). They are written from the
protocol specs (RFC 3416 / X.690 BER, Modbus Application Protocol 1.1b3) and share no code
with dcim, so they test dcim's decoders rather than agree with them. Only loopback addresses.
"""

from __future__ import annotations

import contextlib
import os
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

MODES = ("good", "garbage", "truncated", "huge-length", "wrong-id", "slow", "silent",
         "endless", "overflow")

# --- BER (X.690) ---------------------------------------------------------------------------


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    body = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(body)]) + body


def tlv(tag: int, body: bytes) -> bytes:
    """One BER type-length-value."""
    return bytes([tag]) + _length(len(body)) + body


def ber_int(value: int, tag: int = 0x02) -> bytes:
    """A signed INTEGER (or an application type with an unsigned value, e.g. Counter64)."""
    if tag == 0x02:
        size = max(1, (value + (value < 0)).bit_length() // 8 + 1)
        return tlv(tag, value.to_bytes(size, "big", signed=True))
    size = max(1, (value.bit_length() + 8) // 8)
    return tlv(tag, value.to_bytes(size, "big"))


def ber_oid(oid: tuple[int, ...]) -> bytes:
    """An OBJECT IDENTIFIER."""
    body = bytearray([oid[0] * 40 + oid[1]])
    for arc in oid[2:]:
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        body.extend(reversed(chunk))
    return tlv(0x06, bytes(body))


def _read(data: bytes, pos: int) -> tuple[int, bytes, int]:
    tag = data[pos]
    n = data[pos + 1]
    pos += 2
    if n & 0x80:
        size = n & 0x7F
        n = int.from_bytes(data[pos:pos + size], "big")
        pos += size
    return tag, data[pos:pos + n], pos + n


def _items(body: bytes) -> list[tuple[int, bytes]]:
    out, pos = [], 0
    while pos < len(body):
        tag, value, pos = _read(body, pos)
        out.append((tag, value))
    return out


def _decode_oid(body: bytes) -> tuple[int, ...]:
    arcs = [body[0] // 40, body[0] % 40]
    value = 0
    for byte in body[1:]:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    return tuple(arcs)


SnmpValue = int | bytes | str | tuple[int, int]  # int: INTEGER; str: OID; (tag, n): typed integer


def _encode_value(value: SnmpValue) -> bytes:
    if isinstance(value, (bool, int)):
        return ber_int(int(value))
    if isinstance(value, bytes):
        return tlv(0x04, value)
    if isinstance(value, str):
        return ber_oid(tuple(int(p) for p in value.split(".")))
    tag, number = value
    return ber_int(number, tag)


def oid_tuple(oid: str) -> tuple[int, ...]:
    """A dotted OID as a tuple of ints."""
    return tuple(int(p) for p in oid.strip(".").split("."))


class _Peer:
    """What both responders share: a mode, a delay, counters, a thread, stop()."""

    def __init__(self, mode: str, delay: float):
        if mode not in MODES:
            raise ValueError(f"unknown mode {mode!r}; one of {', '.join(MODES)}")
        self.mode = mode
        self.delay = delay
        self.requests = 0
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self.host = "127.0.0.1"
        self.port = 0

    def _spawn(self, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        thread.start()
        self._threads.append(thread)

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=2)

    def __enter__(self) -> _Peer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class SnmpResponder(_Peer):
    """An SNMPv1/v2c agent on a UDP loopback port that answers from `values` or misbehaves."""

    def __init__(self, values: Mapping[str, SnmpValue], mode: str = "good", *,
                 delay: float = 1.5, overflow: Mapping[str, SnmpValue] | None = None,
                 community: bytes = b"public"):
        super().__init__(mode, delay)
        self.values = {oid_tuple(k): v for k, v in values.items()}
        self.overflow = {oid_tuple(k): v for k, v in (overflow or {}).items()}
        self.community = community
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._endless: dict[tuple[int, ...], int] = {}
        self._spawn(self._serve)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                data, addr = self._sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests += 1
            try:
                reply = self._reply(data)
            except (IndexError, ValueError):
                continue  # not an SNMP request we understand: ignore, as an agent would
            if reply is None:
                continue
            if self.mode == "slow":
                timer = threading.Timer(self.delay, self._send, (reply, addr))
                timer.daemon = True
                timer.start()
            else:
                self._send(reply, addr)
        self._sock.close()

    def _send(self, reply: bytes, addr: Any) -> None:
        with contextlib.suppress(OSError):
            self._sock.sendto(reply, addr)

    def _table(self) -> dict[tuple[int, ...], SnmpValue]:
        if self.mode == "overflow":
            return {**self.values, **self.overflow}
        return self.values

    def _next(self, oid: tuple[int, ...]) -> tuple[tuple[int, ...], bytes]:
        if self.mode == "endless":
            # Always one more row inside the asked column: a walk that never reaches its end.
            is_column = any(key[: len(oid)] == oid for key in self.values if len(key) > len(oid))
            return ((*oid, 1) if is_column else (*oid[:-1], oid[-1] + 1)), ber_int(1)
        table = self._table()
        for key in sorted(table):
            if key > oid:
                return key, _encode_value(table[key])
        return oid, b"\x82\x00"  # endOfMibView

    def _reply(self, data: bytes) -> bytes | None:
        mode = self.mode
        if mode == "silent":
            return None
        if mode == "garbage":
            return os.urandom(random.randint(1, 300))
        _, message, _ = _read(data, 0)
        (_, version), (_, community), (pdu_tag, pdu) = _items(message)
        if community != self.community:
            return None
        (_, request_id), (_, a), (_, b), (_, binds) = _items(pdu)
        oids = [_decode_oid(_items(bind)[0][1]) for _, bind in _items(binds)]
        table = self._table()
        out: list[tuple[tuple[int, ...], bytes]] = []
        if pdu_tag == 0xA0:  # GET
            for oid in oids:
                out.append((oid, _encode_value(table[oid]) if oid in table else b"\x80\x00"))
        elif pdu_tag == 0xA1:  # GETNEXT
            out = [self._next(oid) for oid in oids]
        elif pdu_tag == 0xA5:  # GETBULK: a = non-repeaters, b = max-repetitions
            non_rep, reps = int.from_bytes(a, "big"), int.from_bytes(b, "big")
            out = [self._next(oid) for oid in oids[:non_rep]]
            cursors = oids[non_rep:]
            for _ in range(min(reps, 50)):
                step = [self._next(c) for c in cursors]
                out.extend(step)
                cursors = [oid for oid, _ in step]
        else:
            return None
        rid = int.from_bytes(request_id, "big", signed=True)
        if mode == "wrong-id":
            rid = (rid + 7919) % 2**31
        binds_body = b"".join(tlv(0x30, ber_oid(oid) + value) for oid, value in out)
        body = ber_int(rid) + ber_int(0) + ber_int(0) + tlv(0x30, binds_body)
        reply = tlv(0x30, ber_int(int.from_bytes(version, "big")) + tlv(0x04, self.community)
                    + tlv(0xA2, body))
        if mode == "truncated":
            return reply[: len(reply) // 2]
        if mode == "huge-length":
            # The outer SEQUENCE claims 2**31 bytes (a 4-byte long-form length).
            return b"\x30\x84\x80\x00\x00\x00" + reply[2:] if reply[1] < 0x80 else \
                b"\x30\x84\x80\x00\x00\x00" + reply[2 + (reply[1] & 0x7F):]
        return reply


class ModbusResponder(_Peer):
    """A Modbus TCP server on a loopback port that answers from `registers` or misbehaves.

    `registers` maps (function, address) to a 16-bit word, function "holding" (FC 3) or
    "input" (FC 4); unmapped registers answer exception 2 (illegal data address).
    """

    def __init__(self, registers: Mapping[tuple[str, int], int], mode: str = "good", *,
                 delay: float = 1.5, overflow: Mapping[tuple[str, int], int] | None = None,
                 unit: int = 1):
        super().__init__(mode, delay)
        self.registers = dict(registers)
        self.overflow = dict(overflow or {})
        self.unit = unit
        self.connections = 0
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self._spawn(self._accept)

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            self._spawn(self._serve, conn)
        self._sock.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(0.2)
        buffer = b""
        with conn:
            while not self._stopping.is_set():
                if self.mode == "endless":
                    try:
                        conn.sendall(os.urandom(4096))
                    except OSError:
                        return
                    time.sleep(0.01)  # ~400 KB/s: endless, without eating a shared core
                    continue
                try:
                    chunk = conn.recv(4096)
                except TimeoutError:
                    continue
                except OSError:
                    return
                if not chunk:
                    return
                buffer += chunk
                while len(buffer) >= 12:
                    request, buffer = buffer[:12], buffer[12:]
                    self.requests += 1
                    reply = self._reply(request)
                    if reply is None:
                        continue
                    if self.mode == "slow":
                        time.sleep(self.delay)
                    try:
                        conn.sendall(reply)
                    except OSError:
                        return

    def _reply(self, request: bytes) -> bytes | None:
        mode = self.mode
        if mode == "silent":
            return None
        if mode == "garbage":
            return os.urandom(random.randint(1, 300))
        tid, _, _, unit, fc, address, count = struct.unpack(">HHHBBHH", request)
        function = {3: "holding", 4: "input"}.get(fc)
        table = {**self.registers, **self.overflow} if mode == "overflow" else self.registers
        words = [table.get((function or "", address + i)) for i in range(count)]
        if function is None or count < 1 or count > 125 or any(w is None for w in words):
            code = 1 if function is None else (3 if count < 1 or count > 125 else 2)
            pdu = bytes([fc | 0x80, code])
        else:
            pdu = bytes([fc, 2 * count]) + b"".join(struct.pack(">H", w & 0xFFFF)
                                                     for w in words if w is not None)
        if mode == "wrong-id":
            tid, unit = (tid + 1) & 0xFFFF, (unit + 1) & 0xFF
        length = len(pdu) + 1
        if mode == "huge-length":
            length = 0xFFFF
            pdu = pdu[:1] + b"\xff" + pdu[2:]  # the byte count lies too
        frame = struct.pack(">HHHB", tid, 0, length, unit) + pdu
        if mode == "truncated":
            return frame[: len(frame) // 2]
        return frame
