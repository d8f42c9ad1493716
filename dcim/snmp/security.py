"""SNMPv3 User-based Security Model (RFC 3414) for a manager: keys, digests, privacy, time.

Pure: no I/O, and no clock but the `now` (monotonic seconds) it is given. dcim/snmp/client.py
sends what `wrap_request`/`discovery_request` build and hands what comes back to `unwrap`.

* Authentication: HMAC-SHA-96 (RFC 3414) and HMAC-SHA-2 (RFC 7860: SHA-224/256/384/512,
  MACs of 16/24/32/48 octets) through `hmac`/`hashlib`. Keys come from the passphrase by the
  RFC 3414 A.2 password-to-key algorithm, localized to the agent's engine ID, cached per
  (user, engine ID).
* Privacy: AES-128 in CFB-128 mode (RFC 3826) through `cryptography`; AES-192/256 with the key
  extension of draft-blumenthal-aes-usm-04 (the localized key is extended with the hash of
  itself, Kul || H(Kul) ...), which is what net-snmp's snmpd does for AES-192/AES-256. The
  Reeder extension (re-running password-to-key on the localized key, used by some Cisco
  firmware) gives different keys and is not offered.
* Timeliness (RFC 3414 3.2 step 7): an `EngineClock` per agent keeps its engineBoots/engineTime;
  authenticated messages older than 150 s by that clock are refused as replays.

MD5 and DES are left to pysnmp (the driver routes them there): both are deprecated, and DES in
`cryptography` is on its way out.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Final

from cryptography.hazmat.primitives.ciphers import Cipher, CipherContext, algorithms
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from cryptography.hazmat.primitives.ciphers.modes import ECB

try:  # cryptography >= 43 files CFB under "decrepit"; the primitives alias warns, then goes
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # pragma: no cover - older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB  # type: ignore[assignment,unused-ignore]

from dcim.snmp.codec import (
    OID,
    MsgFlags,
    Pdu,
    PduType,
    ScopedPdu,
    SnmpDecodeError,
    UsmParameters,
    V3Message,
    decode_scoped_pdu,
    encode_pdu,
    encode_scoped_pdu,
    encode_v3_message,
    format_oid,
)
from dcim.snmp.errors import SnmpError

_AUTH: Final = int(MsgFlags.AUTH)
_PRIV: Final = int(MsgFlags.PRIV)
_REPORTABLE: Final = int(MsgFlags.REPORTABLE)
TIME_WINDOW: Final = 150  # seconds, RFC 3414 section 2.2.3
MAX_BOOTS: Final = 0x7FFFFFFF
MAX_MESSAGE_SIZE: Final = 65507  # msgMaxSize we announce: the largest UDP payload over IPv4
_SALT_MASK: Final = 0xFFFFFFFFFFFFFFFF


class AuthProtocol(enum.Enum):
    """Authentication protocols of the fast path: (hashlib name, MAC octets)."""

    SHA = ("sha1", 12)  # usmHMACSHAAuthProtocol, HMAC-SHA-96
    SHA224 = ("sha224", 16)  # usmHMAC128SHA224AuthProtocol
    SHA256 = ("sha256", 24)  # usmHMAC192SHA256AuthProtocol
    SHA384 = ("sha384", 32)  # usmHMAC256SHA384AuthProtocol
    SHA512 = ("sha512", 48)  # usmHMAC384SHA512AuthProtocol

    @property
    def hash_name(self) -> str:
        """hashlib's name of the hash."""
        return self.value[0]

    @property
    def mac_len(self) -> int:
        """Octets of msgAuthenticationParameters (the truncated HMAC)."""
        return self.value[1]


class PrivProtocol(enum.Enum):
    """Privacy protocols of the fast path: AES in CFB-128 mode, by key octets."""

    AES = 16  # usmAesCfb128Protocol (RFC 3826)
    AES192 = 24  # Blumenthal key extension, as net-snmp
    AES256 = 32


class UsmErrorKind(enum.Enum):
    """Why an SNMPv3 request failed: the usmStats report an agent sent, or what we refused."""

    UNSUPPORTED_SEC_LEVEL = "unsupportedSecLevel"
    NOT_IN_TIME_WINDOW = "notInTimeWindow"
    UNKNOWN_USER_NAME = "unknownUserName"
    UNKNOWN_ENGINE_ID = "unknownEngineID"
    WRONG_DIGEST = "wrongDigest"
    DECRYPTION_ERROR = "decryptionError"
    OTHER_REPORT = "report"  # a Report of another counter (unknown context, invalid message)


_USM_STATS: Final = (1, 3, 6, 1, 6, 3, 15, 1, 1)
REPORT_KINDS: Final[dict[OID, UsmErrorKind]] = {
    (*_USM_STATS, 1, 0): UsmErrorKind.UNSUPPORTED_SEC_LEVEL,
    (*_USM_STATS, 2, 0): UsmErrorKind.NOT_IN_TIME_WINDOW,
    (*_USM_STATS, 3, 0): UsmErrorKind.UNKNOWN_USER_NAME,
    (*_USM_STATS, 4, 0): UsmErrorKind.UNKNOWN_ENGINE_ID,
    (*_USM_STATS, 5, 0): UsmErrorKind.WRONG_DIGEST,
    (*_USM_STATS, 6, 0): UsmErrorKind.DECRYPTION_ERROR,
}
# Other counters RFC 3412/3413 agents report, named in the error message.
_OTHER_REPORTS: Final[dict[OID, str]] = {
    (1, 3, 6, 1, 6, 3, 11, 2, 1, 1, 0): "snmpUnknownSecurityModels",
    (1, 3, 6, 1, 6, 3, 11, 2, 1, 2, 0): "snmpInvalidMsgs",
    (1, 3, 6, 1, 6, 3, 11, 2, 1, 3, 0): "snmpUnknownPDUHandlers",
    (1, 3, 6, 1, 6, 3, 12, 1, 4, 0): "snmpUnavailableContexts",
    (1, 3, 6, 1, 6, 3, 12, 1, 5, 0): "snmpUnknownContexts",
}
_HINTS: Final = {
    UsmErrorKind.UNSUPPORTED_SEC_LEVEL: "the agent does not offer this user that security level",
    UsmErrorKind.NOT_IN_TIME_WINDOW: "the agent's engineBoots/engineTime disagree with ours "
    "even after re-synchronising",
    UsmErrorKind.UNKNOWN_USER_NAME: "the agent has no such user",
    UsmErrorKind.UNKNOWN_ENGINE_ID: "the agent does not accept its own engine ID from us",
    UsmErrorKind.WRONG_DIGEST: "authentication failed: wrong auth key or protocol",
    UsmErrorKind.DECRYPTION_ERROR: "the agent could not decrypt: wrong priv key or protocol",
    UsmErrorKind.OTHER_REPORT: "the agent refused the request",
}


class UsmError(SnmpError):
    """An SNMPv3 request failed for a USM reason; `kind` names it (never carries a secret)."""

    def __init__(self, kind: UsmErrorKind, detail: str = "") -> None:
        self.kind = kind
        text = f"SNMPv3 {kind.value}: {_HINTS[kind]}"
        super().__init__(f"{text} ({detail})" if detail else text)


class UsmDrop(Exception):
    """A received message that must be ignored (forged, replayed, undecryptable, malformed)."""

    def __init__(self, kind: UsmErrorKind | None, detail: str) -> None:
        self.kind = kind
        super().__init__(detail)


def report_kind(pdu: Pdu) -> tuple[UsmErrorKind, str]:
    """What a Report PDU reports, and the counter's name for the message."""
    for oid, _ in pdu.varbinds:
        kind = REPORT_KINDS.get(oid)
        if kind is not None:
            return kind, f"usmStats{kind.value[0].upper()}{kind.value[1:]}s"
        name = _OTHER_REPORTS.get(oid)
        if name is not None:
            return UsmErrorKind.OTHER_REPORT, name
    first = format_oid(pdu.varbinds[0][0]) if pdu.varbinds else "no varbinds"
    return UsmErrorKind.OTHER_REPORT, first


# ---------------------------------------------------------------------------------------------
# Users and keys


@dataclass(frozen=True)
class UsmUser:
    """A USM user as the manager knows it; passphrases are hidden from repr."""

    name: bytes
    auth: AuthProtocol | None = None
    auth_passphrase: bytes = field(default=b"", repr=False)
    priv: PrivProtocol | None = None
    priv_passphrase: bytes = field(default=b"", repr=False)
    # msgFlags security bits as a plain int (derived; IntFlag arithmetic is slow per message)
    level_bits: int = field(init=False, repr=False, compare=False)
    _hash: int = field(init=False, repr=False, compare=False)

    def __hash__(self) -> int:
        # computed once: the client looks its sessions up by user for every request
        return self._hash

    def __post_init__(self) -> None:
        if not 1 <= len(self.name) <= 32:
            raise ValueError("a USM user name has 1..32 octets")
        if self.priv is not None and self.auth is None:
            raise ValueError("privacy needs an authentication protocol too")
        # RFC 3414 section 11.2 asks for at least 8 octets; net-snmp refuses shorter ones
        if self.auth is not None and len(self.auth_passphrase) < 8:
            raise ValueError("the auth passphrase needs at least 8 characters")
        if self.priv is not None and len(self.priv_passphrase) < 8:
            raise ValueError("the priv passphrase needs at least 8 characters")
        bits = 0 if self.auth is None else _AUTH | _PRIV if self.priv is not None else _AUTH
        object.__setattr__(self, "level_bits", bits)
        object.__setattr__(self, "_hash", hash((self.name, self.auth, self.auth_passphrase,
                                                self.priv, self.priv_passphrase)))

    @property
    def flags(self) -> MsgFlags:
        """The msgFlags security bits of this user's requests."""
        return MsgFlags(self.level_bits)


@lru_cache(maxsize=256)
def password_to_key(passphrase: bytes, auth: AuthProtocol) -> bytes:
    """RFC 3414 A.2: hash the passphrase repeated to 1 MiB (Ku, not yet localized)."""
    if not passphrase:
        raise ValueError("empty passphrase")
    repeated = passphrase * (1048576 // len(passphrase) + 1)
    return hashlib.new(auth.hash_name, repeated[:1048576]).digest()


def localize_key(key: bytes, engine_id: bytes, auth: AuthProtocol) -> bytes:
    """RFC 3414 2.6: Kul = H(Ku || engineID || Ku)."""
    return hashlib.new(auth.hash_name, key + engine_id + key).digest()


def extend_key_blumenthal(key: bytes, size: int, auth: AuthProtocol) -> bytes:
    """draft-blumenthal-aes-usm-04 3.1.2.1: append H(key so far) until `size` octets."""
    while len(key) < size:
        key += hashlib.new(auth.hash_name, key).digest()
    return key[:size]


@dataclass(frozen=True, slots=True)
class LocalizedKeys:
    """A user's keys localized to one engine ID (empty when the level does not use them)."""

    auth_key: bytes = field(repr=False)
    priv_key: bytes = field(repr=False)
    aes: AES | None = field(default=None, repr=False)  # the cipher's key object, made once


@lru_cache(maxsize=4096)
def localized_keys(user: UsmUser, engine_id: bytes) -> LocalizedKeys:
    """The user's localized auth and priv keys for an engine, computed once per pair."""
    if user.auth is None:
        return LocalizedKeys(b"", b"")
    auth_key = localize_key(password_to_key(user.auth_passphrase, user.auth), engine_id, user.auth)
    priv_key = b""
    if user.priv is not None:
        # the privacy key is localized with the authentication protocol's hash (RFC 3826 3.1.2.1)
        kul = localize_key(password_to_key(user.priv_passphrase, user.auth), engine_id, user.auth)
        priv_key = extend_key_blumenthal(kul, user.priv.value, user.auth)
        return LocalizedKeys(auth_key, priv_key, AES(priv_key))
    return LocalizedKeys(auth_key, priv_key)


def _aes(key: bytes | AES, boots: int, etime: int, salt: bytes) -> Cipher[CFB]:
    # RFC 3826 3.1.2.1: IV = engineBoots (4 octets) || engineTime (4 octets) || salt (8 octets)
    iv = boots.to_bytes(4, "big") + etime.to_bytes(4, "big") + salt
    return Cipher(key if isinstance(key, AES) else algorithms.AES(key), CFB(iv))


def encrypt(key: bytes | AES, boots: int, etime: int, salt: bytes, plaintext: bytes) -> bytes:
    """AES-CFB128 encryption of a scopedPDU (no padding: CFB is a stream mode)."""
    enc = _aes(key, boots, etime, salt).encryptor()
    return enc.update(plaintext) + enc.finalize()


def decrypt(key: bytes | AES, boots: int, etime: int, salt: bytes, ciphertext: bytes) -> bytes:
    """AES-CFB128 decryption."""
    dec = _aes(key, boots, etime, salt).decryptor()
    return dec.update(ciphertext) + dec.finalize()


def block_encryptor(key: AES) -> CipherContext:
    """An AES-ECB encryptor for `cfb_decrypt`, made once per key and reused."""
    return Cipher(key, ECB()).encryptor()


def cfb_decrypt(ecb: CipherContext, boots: int, etime: int, salt: bytes, ciphertext: bytes) -> bytes:
    """`decrypt` without a cipher context per message: CFB-128's keystream blocks are the
    encryptions of the IV and of every ciphertext block but the last, all known up front, so
    one ECB call makes them and one integer XOR applies them."""
    n = len(ciphertext)
    if not n:
        return b""
    iv = boots.to_bytes(4, "big") + etime.to_bytes(4, "big") + salt
    stream = ecb.update(iv + ciphertext[: (n - 1) // 16 * 16])
    plain = int.from_bytes(ciphertext, "big") ^ int.from_bytes(stream[:n], "big")
    return plain.to_bytes(n, "big")


# ---------------------------------------------------------------------------------------------
# Time


class EngineClock:
    """A non-authoritative engine's notion of one agent's engine (RFC 3414 2.3, 3.2 step 7b)."""

    __slots__ = ("boots", "engine_id", "latest_time", "learned_at")

    def __init__(self, engine_id: bytes, boots: int, etime: int, now: float) -> None:
        self.engine_id = engine_id
        self.boots = boots
        self.latest_time = etime  # latestReceivedEngineTime
        self.learned_at = now

    def estimate(self, now: float) -> tuple[int, int]:
        """(engineBoots, engineTime) the agent should have now."""
        return self.boots, max(0, min(self.latest_time + int(now - self.learned_at), MAX_BOOTS))

    def set(self, boots: int, etime: int, now: float) -> None:
        """Take the agent's values as they are (from an authenticated notInTimeWindow report)."""
        self.boots, self.latest_time, self.learned_at = boots, etime, now

    def accept(self, boots: int, etime: int, now: float) -> bool:
        """Step 7b for an authenticated message: advance the clock, then say if it is timely."""
        if boots > self.boots or (boots == self.boots and etime > self.latest_time):
            self.set(boots, etime, now)
        if self.boots == MAX_BOOTS or boots < self.boots:
            return False
        return not (boots == self.boots and etime < self.estimate(now)[1] - TIME_WINDOW)


# ---------------------------------------------------------------------------------------------
# Messages


def discovery_request(msg_id: int) -> bytes:
    """RFC 3414 section 4: a reportable noAuthNoPriv GET with no varbinds and no engine ID,
    which an agent answers with a usmStatsUnknownEngineIDs Report carrying its engine ID,
    engineBoots and engineTime."""
    scoped = encode_scoped_pdu(b"", b"", encode_pdu(Pdu(PduType.GET_REQUEST, msg_id)))
    usm = UsmParameters(b"", 0, 0, b"", b"", b"")
    return encode_v3_message(msg_id, MAX_MESSAGE_SIZE, _REPORTABLE, usm, scoped)[0]


class UsmSession:
    """One user talking to one agent: its clock, and everything per message that does not
    change (keys localized to the agent's engine ID, hash name, MAC length, flags), computed
    once. `clock` None is discovery (no user either)."""

    __slots__ = ("aes", "answered", "auth_key", "clock", "ecb", "flags", "hash_name", "mac_len",
                 "priv", "user", "zeros")

    def __init__(self, user: UsmUser | None, clock: EngineClock | None) -> None:
        self.answered = False  # a Response came back (set by the client)
        self.user = user
        self.clock = clock
        self.flags = user.level_bits if user is not None else 0
        self.priv = bool(self.flags & _PRIV)
        self.hash_name = ""
        self.mac_len = 0
        self.auth_key = b""
        self.aes: AES | None = None
        self.ecb: CipherContext | None = None
        if user is not None and user.auth is not None and clock is not None:
            keys = localized_keys(user, clock.engine_id)
            self.hash_name, self.mac_len = user.auth.value
            self.auth_key, self.aes = keys.auth_key, keys.aes
            if self.aes is not None:
                self.ecb = block_encryptor(self.aes)
        self.zeros = bytes(self.mac_len)

    def wrap(self, msg_id: int, pdu_tlv: bytes, salt: int, now: float) -> bytes:
        """A reportable request carrying this PDU, authenticated and encrypted as the user's
        level asks. `salt` must differ for every message (a counter)."""
        user, clock = self.user, self.clock
        if user is None or clock is None:
            raise ValueError("a discovery session sends discovery_request()")
        boots, etime = clock.estimate(now)
        engine_id = clock.engine_id
        scoped = encode_scoped_pdu(engine_id, b"", pdu_tlv)
        flags = self.flags | _REPORTABLE
        if not self.mac_len:
            usm = UsmParameters(engine_id, boots, etime, user.name, b"", b"")
            return encode_v3_message(msg_id, MAX_MESSAGE_SIZE, flags, usm, scoped)[0]
        priv = b""
        if self.aes is not None:
            priv = (salt & _SALT_MASK).to_bytes(8, "big")
            scoped = encrypt(self.aes, boots, etime, priv, scoped)
        usm = UsmParameters(engine_id, boots, etime, user.name, self.zeros, priv)
        message, at = encode_v3_message(msg_id, MAX_MESSAGE_SIZE, flags, usm, scoped)
        mac = hmac.digest(self.auth_key, message, self.hash_name)[: self.mac_len]
        return message[:at] + mac + message[at + self.mac_len :]

    def unwrap(self, msg: V3Message, raw: bytes, now: float) -> ScopedPdu:
        """Check and open an answer to this session's request, advancing the clock.

        Raises UsmDrop for what must be ignored: a Response below the request's security
        level, a wrong digest, a replay outside the time window, ciphertext that does not
        decrypt to a scopedPDU. Unauthenticated Reports are returned (they are how an agent
        says unknown user, wrong digest and so on)."""
        usm = msg.usm
        if msg.security_model != 3:
            raise UsmDrop(None, f"security model {msg.security_model} is not USM")
        if not msg.flags & _AUTH:
            scoped = _scoped(msg.data)
            if scoped.pdu.type is not PduType.REPORT and self.flags:
                raise UsmDrop(None, "unauthenticated response to an authenticated request")
            return scoped
        user, clock, mac_len = self.user, self.clock, self.mac_len
        if user is None or clock is None or not mac_len:
            raise UsmDrop(None, "authenticated message to an unauthenticated request")
        if usm.engine_id != clock.engine_id or usm.user_name != user.name:
            raise UsmDrop(None, "engine ID or user name differ from the request's")
        if len(usm.auth_params) != mac_len:
            raise UsmDrop(UsmErrorKind.WRONG_DIGEST, "msgAuthenticationParameters of the wrong size")
        at = msg.auth_offset
        mac = hmac.digest(self.auth_key, raw[:at] + self.zeros + raw[at + mac_len :],
                          self.hash_name)
        if not hmac.compare_digest(mac[:mac_len], usm.auth_params):
            raise UsmDrop(UsmErrorKind.WRONG_DIGEST, "digest does not match")
        data = msg.data
        if msg.flags & _PRIV:
            if self.ecb is None:
                raise UsmDrop(None, "encrypted answer to an unencrypted request")
            if len(usm.priv_params) != 8:
                raise UsmDrop(UsmErrorKind.DECRYPTION_ERROR, "msgPrivacyParameters is not 8 octets")
            data = cfb_decrypt(self.ecb, usm.engine_boots, usm.engine_time, usm.priv_params, data)
        elif self.priv:
            scoped = _scoped(data, UsmErrorKind.DECRYPTION_ERROR)
            if scoped.pdu.type is not PduType.REPORT:
                raise UsmDrop(None, "unencrypted response to an encrypted request")
            return _timely(scoped, usm, clock, now)
        return _timely(_scoped(data, UsmErrorKind.DECRYPTION_ERROR), usm, clock, now)


def wrap_request(
    user: UsmUser, clock: EngineClock, msg_id: int, pdu_tlv: bytes, salt: int, now: float
) -> bytes:
    """UsmSession(user, clock).wrap(...): one request without keeping a session."""
    return UsmSession(user, clock).wrap(msg_id, pdu_tlv, salt, now)


def unwrap(
    msg: V3Message, raw: bytes, user: UsmUser | None, clock: EngineClock | None, now: float
) -> ScopedPdu:
    """UsmSession(user, clock).unwrap(...): one answer without keeping a session."""
    return UsmSession(user, clock).unwrap(msg, raw, now)


def _scoped(data: bytes, kind: UsmErrorKind | None = None) -> ScopedPdu:
    try:
        return decode_scoped_pdu(data)
    except SnmpDecodeError as exc:
        raise UsmDrop(kind, f"not a scopedPDU: {exc}") from None


def _timely(scoped: ScopedPdu, usm: UsmParameters, clock: EngineClock, now: float) -> ScopedPdu:
    pdu = scoped.pdu
    if pdu.type is PduType.REPORT and report_kind(pdu)[0] is UsmErrorKind.NOT_IN_TIME_WINDOW:
        # an authenticated notInTimeWindow report carries the agent's true boots/time, even
        # when they are behind ours (the agent's clock ran slow, or it lost its boots counter)
        clock.set(usm.engine_boots, usm.engine_time, now)
        return scoped
    if not clock.accept(usm.engine_boots, usm.engine_time, now):
        raise UsmDrop(
            UsmErrorKind.NOT_IN_TIME_WINDOW,
            f"boots/time {usm.engine_boots}/{usm.engine_time} outside the window",
        )
    return scoped
