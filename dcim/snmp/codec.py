"""Pure BER codec for SNMP messages (no I/O), tuned for decoding responses fast.

v1/v2c messages are `Message`s; an SNMPv3 message (RFC 3412) is a `V3Message`, whose header
and USM security parameters are decoded here while its msgData stays bytes until the security
module (dcim/snmp/security.py) has checked the digest and decrypted it into a `ScopedPdu`.

Values are plain Python where the SNMP type is unambiguous (Integer32 -> int, OCTET STRING ->
bytes, NULL -> None, OBJECT IDENTIFIER -> tuple of ints) and small int/bytes subclasses where
it matters (Counter32, Gauge32, TimeTicks, Counter64, Opaque); IpAddress is an IPv4Address and
the v2c varbind exceptions are the three members of `VarBindException`.

Beware that the int subclasses compare equal to plain ints (Counter32(5) == Gauge32(5) == 5):
compare `type(v)` too where the SNMP type matters.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address
from typing import Final, NamedTuple, TypeAlias

OID: TypeAlias = tuple[int, ...]

MAX_SUBIDS: Final = 128  # RFC 2578 section 3.5
_MAX_ARC: Final = 0xFFFFFFFF
_MAX_U64: Final = 0xFFFFFFFFFFFFFFFF


class SnmpDecodeError(ValueError):
    """The bytes are not a well-formed SNMP message (or use a type we refuse)."""


class _Unsigned(int):
    __slots__ = ()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int(self)})"


class Counter32(_Unsigned):
    """SNMP Counter32 (APPLICATION 1), 0..2**32-1."""

    __slots__ = ()


class Gauge32(_Unsigned):
    """SNMP Gauge32 / Unsigned32 (APPLICATION 2), 0..2**32-1."""

    __slots__ = ()


Unsigned32 = Gauge32  # same tag on the wire, so decoding cannot tell them apart


class TimeTicks(_Unsigned):
    """SNMP TimeTicks (APPLICATION 3), hundredths of a second, 0..2**32-1."""

    __slots__ = ()


class Counter64(_Unsigned):
    """SNMP Counter64 (APPLICATION 6), 0..2**64-1; v2c only."""

    __slots__ = ()


class Opaque(bytes):
    """SNMP Opaque (APPLICATION 4): BER-wrapped bytes we pass through unparsed."""

    __slots__ = ()

    def __repr__(self) -> str:
        return f"Opaque({bytes(self)!r})"


class VarBindException(enum.Enum):
    """The v2c varbind exceptions an agent returns instead of a value."""

    NO_SUCH_OBJECT = 0x80
    NO_SUCH_INSTANCE = 0x81
    END_OF_MIB_VIEW = 0x82


NO_SUCH_OBJECT: Final = VarBindException.NO_SUCH_OBJECT
NO_SUCH_INSTANCE: Final = VarBindException.NO_SUCH_INSTANCE
END_OF_MIB_VIEW: Final = VarBindException.END_OF_MIB_VIEW

Value: TypeAlias = int | bytes | str | OID | IPv4Address | VarBindException | None
VarBind: TypeAlias = tuple[OID, Value]


class PduType(enum.IntEnum):
    """PDU tags (context-specific, constructed)."""

    GET_REQUEST = 0xA0
    GET_NEXT_REQUEST = 0xA1
    RESPONSE = 0xA2
    SET_REQUEST = 0xA3
    GET_BULK_REQUEST = 0xA5
    INFORM_REQUEST = 0xA6
    SNMPV2_TRAP = 0xA7
    REPORT = 0xA8


class ErrorStatus(enum.IntEnum):
    """error-status values of RFC 3416 (0-5 also exist in v1)."""

    noError = 0
    tooBig = 1
    noSuchName = 2
    badValue = 3
    readOnly = 4
    genErr = 5
    noAccess = 6
    wrongType = 7
    wrongLength = 8
    wrongEncoding = 9
    wrongValue = 10
    noCreation = 11
    inconsistentValue = 12
    resourceUnavailable = 13
    commitFailed = 14
    undoFailed = 15
    authorizationError = 16
    notWritable = 17
    inconsistentName = 18


def error_status_name(status: int) -> str:
    """RFC 3416 name of an error-status value, or 'error<N>' for values outside it."""
    try:
        return ErrorStatus(status).name
    except ValueError:
        return f"error{status}"


V1: Final = 0
V2C: Final = 1
V3: Final = 3
USM_SECURITY_MODEL: Final = 3  # RFC 3411 SnmpSecurityModel
_V1_PDUS: Final = frozenset(
    {PduType.GET_REQUEST, PduType.GET_NEXT_REQUEST, PduType.RESPONSE, PduType.SET_REQUEST}
)
_PDU_BY_TAG: Final = {int(t): t for t in PduType}


@dataclass(frozen=True, slots=True)
class Pdu:
    """One PDU; for GetBulk the error fields carry non-repeaters and max-repetitions."""

    type: PduType
    request_id: int
    error_status: int = 0
    error_index: int = 0
    varbinds: tuple[VarBind, ...] = ()

    @property
    def non_repeaters(self) -> int:
        """GetBulk non-repeaters (stored in error-status)."""
        return self.error_status

    @property
    def max_repetitions(self) -> int:
        """GetBulk max-repetitions (stored in error-index)."""
        return self.error_index


@dataclass(frozen=True, slots=True)
class Message:
    """A community-based SNMP message: version 0 (v1) or 1 (v2c)."""

    version: int
    community: bytes
    pdu: Pdu


def bulk_pdu(
    request_id: int, non_repeaters: int, max_repetitions: int, varbinds: Iterable[VarBind]
) -> Pdu:
    """Build a GetBulkRequest PDU with its fields named as RFC 3416 names them."""
    return Pdu(
        PduType.GET_BULK_REQUEST, request_id, non_repeaters, max_repetitions, tuple(varbinds)
    )


# ---------------------------------------------------------------------------------------------
# OIDs


def parse_oid(text: str) -> OID:
    """Parse dotted OID text ('1.3.6.1.2.1.1.1.0', a leading dot allowed) into a tuple."""
    body = text[1:] if text.startswith(".") else text
    try:
        oid = tuple(int(part) for part in body.split("."))
    except ValueError:
        raise ValueError(f"not a numeric OID: {text!r}") from None
    _check_oid(oid)
    return oid


def format_oid(oid: Sequence[int]) -> str:
    """Format an OID tuple as dotted text without a leading dot."""
    return ".".join(map(str, oid))


def _check_oid(oid: Sequence[int]) -> None:
    if not 2 <= len(oid) <= MAX_SUBIDS:
        raise ValueError(f"an OID needs 2..{MAX_SUBIDS} arcs, got {len(oid)}")
    for arc in oid:
        if type(arc) is not int or not 0 <= arc <= _MAX_ARC:
            raise ValueError(f"OID arc out of range 0..2**32-1: {arc!r}")
    if oid[0] > 2 or (oid[0] < 2 and oid[1] >= 40):
        raise ValueError(f"invalid first arcs {oid[0]}.{oid[1]}")


def _encode_oid_body(oid: Sequence[int]) -> bytes:
    _check_oid(oid)
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        if arc < 0x80:
            out.append(arc)
            continue
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out.extend(reversed(chunk))
    return bytes(out)


def _decode_oid_body(body: bytes) -> OID:
    if not body or body[-1] & 0x80:
        raise SnmpDecodeError("empty or truncated OID")
    arcs: list[int] = []
    acc = 0
    for byte in body:
        if byte == 0x80 and acc == 0:
            raise SnmpDecodeError("OID subidentifier has a leading 0x80 pad")
        acc = (acc << 7) | (byte & 0x7F)
        if byte < 0x80:
            arcs.append(acc)
            acc = 0
    first = arcs[0]
    if first < 40:
        arcs[0:1] = (0, first)
    elif first < 80:
        arcs[0:1] = (1, first - 40)
    else:
        arcs[0:1] = (2, first - 80)
    if len(arcs) > MAX_SUBIDS or max(arcs) > _MAX_ARC:
        raise SnmpDecodeError("OID too long or arc above 2**32-1")
    return tuple(arcs)


# Polls repeat the same OIDs, so both directions are memoised; cleared wholesale when full
# (cheaper than LRU bookkeeping, and a walk that floods it just refills it).
_CACHE_MAX: Final = 1 << 16
_oid_tlv_cache: dict[OID, bytes] = {}
_oid_decode_cache: dict[bytes, OID] = {}


def _oid_tlv(oid: OID) -> bytes:
    tlv = _oid_tlv_cache.get(oid)
    if tlv is None:
        body = _encode_oid_body(oid)
        tlv = b"\x06" + _length(len(body)) + body
        if len(_oid_tlv_cache) >= _CACHE_MAX:
            _oid_tlv_cache.clear()
        _oid_tlv_cache[tuple(oid)] = tlv
    return tlv


def _oid_from(body: bytes) -> OID:
    oid = _oid_decode_cache.get(body)
    if oid is None:
        oid = _decode_oid_body(body)
        if len(_oid_decode_cache) >= _CACHE_MAX:
            _oid_decode_cache.clear()
        _oid_decode_cache[body] = oid
    return oid


# ---------------------------------------------------------------------------------------------
# Encoding

_SHORT_LEN: Final = [bytes([n]) for n in range(0x80)]


def _length(n: int) -> bytes:
    if n < 0x80:
        return _SHORT_LEN[n]
    if n < 0x100:
        return bytes((0x81, n))
    if n < 0x10000:
        return bytes((0x82, n >> 8, n & 0xFF))
    return b"\x84" + n.to_bytes(4, "big")


def _length_size(n: int) -> int:
    return 1 if n < 0x80 else 2 if n < 0x100 else 3 if n < 0x10000 else 5


def _tlv(tag: bytes, body: bytes) -> bytes:
    return tag + _length(len(body)) + body


_UNSIGNED_TAG: Final[dict[type, bytes]] = {
    Counter32: b"\x41",
    Gauge32: b"\x42",
    TimeTicks: b"\x43",
}


def _int_body(n: int) -> bytes:
    # minimal two's complement; for non-negatives this adds the 0x00 an unsigned high bit needs
    return n.to_bytes((n + (n < 0)).bit_length() // 8 + 1, "big", signed=True)


def _enc_integer(tag: bytes, lo: int, hi: int, n: int) -> bytes:
    if not lo <= n <= hi:
        raise ValueError(f"{n} out of range {lo}..{hi} for tag 0x{tag.hex()}")
    body = _int_body(n)
    return tag + _SHORT_LEN[len(body)] + body


def _enc_value(value: Value, version: int) -> bytes:
    # subclasses before their bases: Counter32 is an int, Opaque is bytes, bool is an int
    if isinstance(value, VarBindException):
        if version == V1:
            raise ValueError("varbind exceptions do not exist in SNMPv1")
        return bytes((value.value, 0))
    if isinstance(value, _Unsigned):
        if isinstance(value, Counter64):
            if version == V1:
                raise ValueError("Counter64 does not exist in SNMPv1")
            return _enc_integer(b"\x46", 0, _MAX_U64, value)
        return _enc_integer(_UNSIGNED_TAG[type(value)], 0, _MAX_ARC, value)
    if isinstance(value, bool):
        raise TypeError("bool is not an SNMP type; pass an int")
    if isinstance(value, int):
        return _enc_integer(b"\x02", -0x80000000, 0x7FFFFFFF, value)
    if value is None:
        return b"\x05\x00"
    if isinstance(value, Opaque):
        return _tlv(b"\x44", bytes(value))
    if isinstance(value, bytes | bytearray | memoryview):
        return _tlv(b"\x04", bytes(value))
    if isinstance(value, str):
        return _tlv(b"\x04", value.encode())
    if isinstance(value, tuple):
        return _oid_tlv(value)
    if isinstance(value, IPv4Address):
        return b"\x40\x04" + value.packed
    raise TypeError(f"cannot encode {type(value).__name__} as an SNMP value")


def encode_varbind(oid: OID, value: Value, version: int = V2C) -> bytes:
    """Encode one VarBind SEQUENCE (useful for sizing responses)."""
    body = _oid_tlv(oid) + _enc_value(value, version)
    return b"\x30" + _length(len(body)) + body


def _message_head(version: int, community: bytes) -> bytes:
    if version not in (V1, V2C):
        raise ValueError(f"only v1 (0) and v2c (1) are supported, got {version}")
    return b"\x02\x01" + bytes((version,)) + _tlv(b"\x04", community)


def _wrap(head: bytes, tag: int, pdu_body: bytes) -> bytes:
    pdu = bytes((tag,)) + _length(len(pdu_body)) + pdu_body
    return b"\x30" + _length(len(head) + len(pdu)) + head + pdu


def _check_pdu(version: int, pdu: Pdu) -> None:
    if version == V1 and pdu.type not in _V1_PDUS:
        raise ValueError(f"{pdu.type.name} does not exist in SNMPv1")
    if pdu.type is PduType.GET_BULK_REQUEST:
        for field in (pdu.error_status, pdu.error_index):
            if not 0 <= field <= 0x7FFFFFFF:
                raise ValueError(f"non-repeaters/max-repetitions out of range: {field}")


def _pdu_body(pdu: Pdu, version: int) -> bytes:
    vbs = b"".join([encode_varbind(oid, value, version) for oid, value in pdu.varbinds])
    return b"".join(
        (
            _enc_integer(b"\x02", -0x80000000, 0x7FFFFFFF, pdu.request_id),
            _enc_integer(b"\x02", -0x80000000, 0x7FFFFFFF, pdu.error_status),
            _enc_integer(b"\x02", -0x80000000, 0x7FFFFFFF, pdu.error_index),
            b"\x30",
            _length(len(vbs)),
            vbs,
        )
    )


def encode_message(version: int, community: bytes, pdu: Pdu) -> bytes:
    """Encode a v1 (0) / v2c (1) message; raises ValueError/TypeError on unencodable input."""
    head = _message_head(version, community)
    _check_pdu(version, pdu)
    return _wrap(head, pdu.type, _pdu_body(pdu, version))


def encode_pdu(pdu: Pdu) -> bytes:
    """Encode a PDU on its own (v2c rules), as an SNMPv3 scopedPDU carries it."""
    _check_pdu(V3, pdu)
    return _tlv(bytes((pdu.type,)), _pdu_body(pdu, V3))


def fit_varbinds(version: int, community: bytes, pdu: Pdu, max_size: int) -> int:
    """Largest n such that `pdu` with only its first n varbinds encodes to <= max_size bytes."""
    head = _message_head(version, community)
    _check_pdu(version, pdu)
    fixed = sum(
        len(_int_body(n)) + 2 for n in (pdu.request_id, pdu.error_status, pdu.error_index)
    )
    sizes = [len(encode_varbind(oid, value, version)) for oid, value in pdu.varbinds]
    total = sum(sizes)
    for n in range(len(sizes), -1, -1):
        pdu_len = fixed + 1 + _length_size(total) + total
        msg_len = len(head) + 1 + _length_size(pdu_len) + pdu_len
        if 1 + _length_size(msg_len) + msg_len <= max_size:
            return n
        if n:
            total -= sizes[n - 1]
    return -1  # not even an empty varbind list fits


class RequestTemplate:
    """A request pre-encoded except for its request-id, so a poll only patches that in.

    A v3 template (version V3, community unused) encodes only the PDU (`encode_pdu`): the
    security module wraps it in a scopedPDU and a USM message per request.
    """

    __slots__ = ("_head", "_tail", "community", "non_repeaters", "oids", "pdu_type", "version")

    def __init__(
        self,
        version: int,
        community: bytes,
        pdu_type: PduType,
        oids: Iterable[OID],
        non_repeaters: int = 0,
        max_repetitions: int = 0,
    ) -> None:
        self.version = version
        self.community = community
        self.pdu_type = pdu_type
        self.oids: tuple[OID, ...] = tuple(tuple(o) for o in oids)
        self.non_repeaters = non_repeaters
        bulk = pdu_type is PduType.GET_BULK_REQUEST
        probe = Pdu(
            pdu_type,
            0,
            non_repeaters if bulk else 0,
            max_repetitions if bulk else 0,
            tuple((oid, None) for oid in self.oids),
        )
        _check_pdu(version, probe)
        self._head = b"" if version == V3 else _message_head(version, community)
        vbs = b"".join([encode_varbind(oid, None) for oid in self.oids])
        self._tail = (
            _enc_integer(b"\x02", 0, 0x7FFFFFFF, probe.error_status)
            + _enc_integer(b"\x02", 0, 0x7FFFFFFF, probe.error_index)
            + b"\x30"
            + _length(len(vbs))
            + vbs
        )

    def encode(self, request_id: int) -> bytes:
        """The request's bytes carrying `request_id`."""
        rid = _enc_integer(b"\x02", -0x80000000, 0x7FFFFFFF, request_id)
        return _wrap(self._head, self.pdu_type, rid + self._tail)

    def encode_pdu(self, request_id: int) -> bytes:
        """The PDU alone carrying `request_id` (what an SNMPv3 scopedPDU wraps)."""
        body = _enc_integer(b"\x02", -0x80000000, 0x7FFFFFFF, request_id) + self._tail
        return bytes((self.pdu_type,)) + _length(len(body)) + body


# ---------------------------------------------------------------------------------------------
# Decoding (the hot path: a poll decodes far more than it encodes)


def _long_length(data: bytes, i: int, limit: int) -> tuple[int, int]:
    """Content start/end for a long-form length whose first byte is at data[i]."""
    count = data[i] & 0x7F
    if count == 0 or count > 4:
        raise SnmpDecodeError("indefinite or oversized BER length")
    start = i + 1 + count
    if start > limit:
        raise SnmpDecodeError("BER length runs past the end")
    end = start + int.from_bytes(data[i + 1 : start], "big")
    if end > limit:
        raise SnmpDecodeError("BER content runs past the end")
    return start, end


def _header(data: bytes, i: int, limit: int, tag: int) -> tuple[int, int]:
    """Check the tag at data[i] and return its content's start/end, bounded by limit."""
    if i + 2 > limit or data[i] != tag:
        raise SnmpDecodeError(f"expected tag 0x{tag:02x} at offset {i}")
    n = data[i + 1]
    if n < 0x80:
        end = i + 2 + n
        if end > limit:
            raise SnmpDecodeError("BER content runs past the end")
        return i + 2, end
    return _long_length(data, i + 1, limit)


def _int32(data: bytes, i: int, limit: int) -> tuple[int, int]:
    start, end = _header(data, i, limit, 0x02)
    value = int.from_bytes(data[start:end], "big", signed=True)
    if start == end or not -0x80000000 <= value <= 0x7FFFFFFF:
        raise SnmpDecodeError("INTEGER empty or outside Integer32")
    return value, end


_new_int = int.__new__
_UNSIGNED: Final = {0x41: Counter32, 0x42: Gauge32, 0x43: TimeTicks}


def decode_message(data: bytes | bytearray | memoryview) -> Message:
    """Decode one v1/v2c message; any malformation raises SnmpDecodeError."""
    try:
        return _decode(bytes(data))
    except SnmpDecodeError:
        raise
    except (IndexError, ValueError, TypeError, OverflowError) as exc:
        # belt and braces: the explicit checks should make this unreachable
        raise SnmpDecodeError(f"malformed message: {exc}") from exc


def _message_start(data: bytes) -> tuple[int, int, int]:
    """msgVersion, where what follows it starts, and where the message ends (= its size)."""
    size = len(data)
    start, end = _header(data, 0, size, 0x30)
    if end != size:
        raise SnmpDecodeError("trailing bytes after the message")
    version, i = _int32(data, start, end)
    return version, i, end


def _decode(data: bytes) -> Message:
    version, i, end = _message_start(data)
    if version != V1 and version != V2C:
        raise SnmpDecodeError(f"unsupported SNMP version {version}")
    cstart, i = _header(data, i, end, 0x04)
    community = data[cstart:i]
    return Message(version, community, _decode_pdu(data, i, end, version))


def _decode_pdu(data: bytes, i: int, end: int, version: int) -> Pdu:
    """The PDU at data[i], which must end exactly at `end`."""
    if i >= end:
        raise SnmpDecodeError("missing PDU")
    pdu_type = _PDU_BY_TAG.get(data[i])
    if pdu_type is None or (version == V1 and pdu_type not in _V1_PDUS):
        raise SnmpDecodeError(f"unsupported PDU tag 0x{data[i]:02x} for version {version}")
    pstart, pend = _header(data, i, end, data[i])
    if pend != end:
        raise SnmpDecodeError("trailing bytes after the PDU")
    request_id, i = _int32(data, pstart, pend)
    error_status, i = _int32(data, i, pend)
    error_index, i = _int32(data, i, pend)
    if pdu_type is PduType.GET_BULK_REQUEST and (error_status < 0 or error_index < 0):
        raise SnmpDecodeError("negative non-repeaters or max-repetitions")
    i, vend = _header(data, i, pend, 0x30)
    if vend != pend:
        raise SnmpDecodeError("trailing bytes after the varbind list")
    varbinds: list[VarBind] = []
    append = varbinds.append
    from_bytes = int.from_bytes
    cache_get = _oid_decode_cache.get
    while i < vend:
        # VarBind SEQUENCE; short lengths are inlined because this loop is the hot path
        if data[i] != 0x30:
            raise SnmpDecodeError(f"expected a VarBind SEQUENCE at offset {i}")
        n = data[i + 1]
        if n < 0x80:
            s = i + 2
            e = s + n
            if e > vend:
                raise SnmpDecodeError("VarBind runs past the end")
        else:
            s, e = _long_length(data, i + 1, vend)
        # name
        if data[s] != 0x06:
            raise SnmpDecodeError(f"expected an OID at offset {s}")
        n = data[s + 1]
        if n < 0x80:
            os = s + 2
            oe = os + n
            if oe > e:
                raise SnmpDecodeError("OID runs past its VarBind")
        else:
            os, oe = _long_length(data, s + 1, e)
        ob = data[os:oe]
        oid = cache_get(ob)
        if oid is None:
            oid = _oid_from(ob)
        # value
        if oe + 2 > e:
            raise SnmpDecodeError("VarBind has no value")
        tag = data[oe]
        n = data[oe + 1]
        if n < 0x80:
            vs = oe + 2
            ve = vs + n
        else:
            vs, ve = _long_length(data, oe + 1, e)
        if ve != e:
            raise SnmpDecodeError("VarBind length does not match its contents")
        value: Value
        n = ve - vs
        # Lengths beyond the minimum are legal BER and really sent (pyasn1 pads -2**31 to
        # five octets), so the range is checked on the value, only when the length allows
        # it to be out of range.
        if tag == 0x02:
            value = from_bytes(data[vs:ve], "big", signed=True)
            if not 0 < n <= 4 and (n == 0 or not -0x80000000 <= value <= 0x7FFFFFFF):
                raise SnmpDecodeError("INTEGER empty or outside Integer32")
        elif 0x41 <= tag <= 0x43:
            num = from_bytes(data[vs:ve], "big")
            if n == 0 or data[vs] & 0x80 or (n > 4 and num > 0xFFFFFFFF):
                raise SnmpDecodeError("32-bit unsigned value empty, negative or too large")
            value = _new_int(_UNSIGNED[tag], num)
        elif tag == 0x04:
            value = data[vs:ve]
        elif tag == 0x46:
            num = from_bytes(data[vs:ve], "big")
            if version == V1 or n == 0 or data[vs] & 0x80 or (n > 8 and num > _MAX_U64):
                raise SnmpDecodeError("Counter64 empty, negative, too large or in v1")
            value = _new_int(Counter64, num)
        elif tag == 0x06:
            value = _oid_from(data[vs:ve])
        elif tag == 0x05:
            if n:
                raise SnmpDecodeError("NULL with content")
            value = None
        elif tag == 0x40:
            if n != 4:
                raise SnmpDecodeError("IpAddress must be 4 octets")
            value = IPv4Address(data[vs:ve])
        elif 0x80 <= tag <= 0x82:
            if n or version == V1:
                raise SnmpDecodeError("malformed varbind exception (or in a v1 message)")
            value = VarBindException(tag)
        elif tag == 0x44:
            value = Opaque(data[vs:ve])
        else:
            raise SnmpDecodeError(f"unsupported value tag 0x{tag:02x}")
        append((oid, value))
        i = e
    return Pdu(pdu_type, request_id, error_status, error_index, tuple(varbinds))


# ---------------------------------------------------------------------------------------------
# SNMPv3 (RFC 3412 message, RFC 3414 USM security parameters)


class MsgFlags(enum.IntFlag):
    """msgFlags bits (RFC 3412 section 6.4)."""

    AUTH = 0x01
    PRIV = 0x02
    REPORTABLE = 0x04


class UsmParameters(NamedTuple):
    """UsmSecurityParameters (RFC 3414 section 2.4)."""

    engine_id: bytes
    engine_boots: int
    engine_time: int
    user_name: bytes
    auth_params: bytes
    priv_params: bytes


class ScopedPdu(NamedTuple):
    """A scopedPDU: the context it addresses and the PDU."""

    context_engine_id: bytes
    context_name: bytes
    pdu: Pdu


# The v3 structures are NamedTuples: a frozen dataclass costs microseconds to build, and every
# message builds several.
class V3Message(NamedTuple):
    """An SNMPv3 message with its msgData still as sent: a plaintext scopedPDU's encoding, or
    the ciphertext when MsgFlags.PRIV is set. `auth_offset` locates msgAuthenticationParameters
    in the encoded message, so a digest check can zero it in place."""

    msg_id: int
    max_size: int
    flags: int  # MsgFlags bits, a plain int (IntFlag operations are slow on the hot path)
    security_model: int
    usm: UsmParameters
    auth_offset: int
    data: bytes


def encode_scoped_pdu(context_engine_id: bytes, context_name: bytes, pdu_tlv: bytes) -> bytes:
    """A scopedPDU around an already encoded PDU (`encode_pdu`, RequestTemplate.encode_pdu)."""
    return _tlv(b"\x30", _tlv(b"\x04", context_engine_id) + _tlv(b"\x04", context_name) + pdu_tlv)


_SMALL_UINT: Final = [b"\x02\x01" + bytes((n,)) for n in range(0x80)]


def _enc_uint31(n: int) -> bytes:
    """INTEGER TLV of 0..2**31-1 (msgID, engineBoots, engineTime: every request encodes them)."""
    if n < 0x80:
        if n < 0:
            raise ValueError(f"{n} out of range 0..2**31-1")
        return _SMALL_UINT[n]
    if n > 0x7FFFFFFF:
        raise ValueError(f"{n} out of range 0..2**31-1")
    body = n.to_bytes(n.bit_length() // 8 + 1, "big")
    return b"\x02" + _SHORT_LEN[len(body)] + body


def encode_v3_message(
    msg_id: int, max_size: int, flags: int, usm: UsmParameters, data: bytes
) -> tuple[bytes, int]:
    """Encode an SNMPv3/USM message; returns it and the offset of msgAuthenticationParameters.

    `flags` holds MsgFlags bits; `data` is the scopedPDU's encoding, or its ciphertext when
    flags has PRIV (then wrapped in an OCTET STRING here).
    """
    if flags & 0x02 and not flags & 0x01:
        raise ValueError("privacy without authentication is not a security level")
    user, engine_id, auth = usm.user_name, usm.engine_id, usm.auth_params
    if len(user) > 32:
        raise ValueError("a USM user name has at most 32 octets")
    if max_size < 484:
        raise ValueError("msgMaxSize below 484")
    global_data = _enc_uint31(msg_id) + _enc_uint31(max_size) + b"\x04\x01" + _FLAG_OCTET[flags & 7]
    header = b"\x30" + _length(len(global_data) + 3) + global_data + b"\x02\x01\x03"
    before_auth = b"".join((
        b"\x04", _length(len(engine_id)), engine_id,
        _enc_uint31(usm.engine_boots), _enc_uint31(usm.engine_time),
        b"\x04", _length(len(user)), user,
        b"\x04", _length(len(auth)),
    ))  # fmt: skip
    after_auth = b"\x04" + _length(len(usm.priv_params)) + usm.priv_params
    sec_body_len = len(before_auth) + len(auth) + len(after_auth)
    sec_seq_head = b"\x30" + _length(sec_body_len)
    sec_len = len(sec_seq_head) + sec_body_len
    prefix = b"".join(
        (b"\x02\x01\x03", header, b"\x04", _length(sec_len), sec_seq_head, before_auth)
    )
    if flags & 0x02:
        data = b"\x04" + _length(len(data)) + data
    outer = b"\x30" + _length(len(prefix) + len(auth) + len(after_auth) + len(data))
    return b"".join((outer, prefix, auth, after_auth, data)), len(outer) + len(prefix)


_FLAG_OCTET: Final = [bytes((n,)) for n in range(8)]


def message_version(data: bytes) -> int:
    """The msgVersion of an encoded message, without decoding the rest."""
    start, end = _header(data, 0, len(data), 0x30)
    return _int32(data, start, end)[0]


def decode_v3_message(data: bytes | bytearray | memoryview) -> V3Message:
    """Decode an SNMPv3 message's header and USM parameters; malformations raise
    SnmpDecodeError. The scopedPDU is left to `decode_scoped_pdu` (after decryption)."""
    try:
        return _decode_v3(bytes(data))
    except SnmpDecodeError:
        raise
    except (IndexError, ValueError, TypeError, OverflowError) as exc:
        raise SnmpDecodeError(f"malformed SNMPv3 message: {exc}") from exc


def _octets(data: bytes, i: int, limit: int) -> tuple[int, int]:
    return _header(data, i, limit, 0x04)


def _uint31(data: bytes, i: int, limit: int, what: str) -> tuple[int, int]:
    value, i = _int32(data, i, limit)
    if value < 0:
        raise SnmpDecodeError(f"negative {what}")
    return value, i


def _decode_v3(data: bytes) -> V3Message:
    version, i, end = _message_start(data)
    if version != V3:
        raise SnmpDecodeError(f"not an SNMPv3 message (version {version})")
    hstart, hend = _header(data, i, end, 0x30)
    msg_id, j = _uint31(data, hstart, hend, "msgID")
    max_size, j = _uint31(data, j, hend, "msgMaxSize")
    fstart, j = _octets(data, j, hend)
    if j - fstart != 1:
        raise SnmpDecodeError("msgFlags must be one octet")
    flags = data[fstart] & 0x07
    if flags & 0x02 and not flags & 0x01:
        raise SnmpDecodeError("msgFlags asks for privacy without authentication")
    model, j = _uint31(data, j, hend, "msgSecurityModel")
    if j != hend or max_size < 484:
        raise SnmpDecodeError("malformed msgGlobalData")
    sstart, i = _octets(data, hend, end)
    # UsmSecurityParameters: a SEQUENCE filling the msgSecurityParameters OCTET STRING
    ustart, uend = _header(data, sstart, i, 0x30)
    if uend != i:
        raise SnmpDecodeError("trailing bytes in msgSecurityParameters")
    es, j = _octets(data, ustart, uend)
    engine_id = data[es:j]
    boots, j = _uint31(data, j, uend, "msgAuthoritativeEngineBoots")
    etime, j = _uint31(data, j, uend, "msgAuthoritativeEngineTime")
    us, j = _octets(data, j, uend)
    user = data[us:j]
    auth_offset, j = _octets(data, j, uend)
    auth = data[auth_offset:j]
    ps, j = _octets(data, j, uend)
    priv = data[ps:j]
    if j != uend or len(engine_id) > 32 or len(user) > 32:
        raise SnmpDecodeError("malformed UsmSecurityParameters")
    if flags & 0x02:
        ds, de = _octets(data, i, end)
    else:
        ds = i
        de = _header(data, i, end, 0x30)[1]
    if de != end:
        raise SnmpDecodeError("trailing bytes after msgData")
    return V3Message(
        msg_id,
        max_size,
        flags,
        model,
        UsmParameters(engine_id, boots, etime, user, auth, priv),
        auth_offset,
        data[ds:de],
    )


def decode_scoped_pdu(data: bytes | bytearray | memoryview) -> ScopedPdu:
    """Decode a (decrypted) scopedPDU; any malformation raises SnmpDecodeError."""
    raw = bytes(data)
    try:
        start, end = _header(raw, 0, len(raw), 0x30)
        if end != len(raw):
            raise SnmpDecodeError("trailing bytes after the scopedPDU")
        es, i = _octets(raw, start, end)
        ns, j = _octets(raw, i, end)
        return ScopedPdu(raw[es:i], raw[ns:j], _decode_pdu(raw, j, end, V3))
    except SnmpDecodeError:
        raise
    except (IndexError, ValueError, TypeError, OverflowError) as exc:
        raise SnmpDecodeError(f"malformed scopedPDU: {exc}") from exc
