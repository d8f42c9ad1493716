"""SNMPv3 USM (dcim/snmp/security.py) and the v3 message codec, without a network.

Keys against RFC 3414's worked example and pysnmp (the reference) for SHA-2 and the AES-192/256
key extension; the v3 encoding against pyasn1 with pysnmp's ASN.1 specs; hypothesis round trips
through wrap and unwrap at every security level; forged, truncated, tampered and replayed
messages refused with UsmDrop/SnmpDecodeError and nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
from typing import Any

import pysnmp.hlapi.v3arch.asyncio  # noqa: F401 - imports pysnmp's modules in working order
import pytest
from cryptography.hazmat.primitives.ciphers.algorithms import AES
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder as ber_decoder
from pyasn1.type import univ
from pysnmp.proto.mpmod.rfc3412 import SNMPv3Message
from pysnmp.proto.secmod.eso.priv import aes192, aes256
from pysnmp.proto.secmod.rfc3414 import localkey
from pysnmp.proto.secmod.rfc3414.service import UsmSecurityParameters
from pysnmp.proto.secmod.rfc3826.priv import aes
from pysnmp.proto.secmod.rfc7860.auth import hmacsha2

from dcim.snmp.codec import (
    Counter64,
    Gauge32,
    MsgFlags,
    Pdu,
    PduType,
    ScopedPdu,
    SnmpDecodeError,
    UsmParameters,
    V3Message,
    decode_scoped_pdu,
    decode_v3_message,
    encode_pdu,
    encode_scoped_pdu,
    encode_v3_message,
    message_version,
)
from dcim.snmp.security import (
    REPORT_KINDS,
    TIME_WINDOW,
    AuthProtocol,
    EngineClock,
    PrivProtocol,
    UsmDrop,
    UsmErrorKind,
    UsmUser,
    block_encryptor,
    cfb_decrypt,
    decrypt,
    discovery_request,
    encrypt,
    localize_key,
    localized_keys,
    password_to_key,
    report_kind,
    unwrap,
    wrap_request,
)

ENGINE = bytes.fromhex("80001f8880e9b104617361000000")
NOW = 1000.0
USERS = [UsmUser(b"plain")] + [
    UsmUser(f"u{a.name}{p.name if p else ''}".encode(), a, b"auth-pass-" + a.name.encode(), p,
            b"priv-pass-" + (p.name.encode() if p else b""))
    for a in AuthProtocol for p in (None, *PrivProtocol)
]
RESPONSE = Pdu(PduType.RESPONSE, 4242, 0, 0, (
    ((1, 3, 6, 1, 2, 1, 1, 5, 0), b"pdu-a"),
    ((1, 3, 6, 1, 4, 1, 318, 1, 1, 12, 2, 3, 1, 1, 2, 1), Gauge32(73)),
    ((1, 3, 6, 1, 2, 1, 31, 1, 1, 1, 6, 1), Counter64(2**40 + 3)),
))


def answer(user: UsmUser, pdu: Pdu = RESPONSE, boots: int = 3, etime: int = 500,
           now: float = NOW, msg_id: int = 4242, salt: int = 99) -> bytes:
    """What the agent would send: built by the same USM (the wire format is symmetric)."""
    return wrap_request(user, EngineClock(ENGINE, boots, etime, now), msg_id, encode_pdu(pdu),
                        salt, now)


def open_answer(raw: bytes, user: UsmUser, clock: EngineClock | None = None,
                now: float = NOW) -> ScopedPdu:
    return unwrap(decode_v3_message(raw), raw, user,
                  clock or EngineClock(ENGINE, 3, 500, NOW), now)


# --- keys ---------------------------------------------------------------------------------------


def test_rfc3414_sha_key_localization_example() -> None:
    # RFC 3414 A.3.2: passphrase "maplesyrup", engine ID 00..02
    ku = password_to_key(b"maplesyrup", AuthProtocol.SHA)
    assert ku.hex() == "9fb5cc0381497b3793528939ff788d5d79145211"
    kul = localize_key(ku, bytes.fromhex("000000000000000000000002"), AuthProtocol.SHA)
    assert kul.hex() == "6695febc9288e36282235fc7151f128497b38f3f"


HASHES = {AuthProtocol.SHA: hashlib.sha1, AuthProtocol.SHA224: hashlib.sha224,
          AuthProtocol.SHA256: hashlib.sha256, AuthProtocol.SHA384: hashlib.sha384,
          AuthProtocol.SHA512: hashlib.sha512}
PYSNMP_AUTH_IDS = {AuthProtocol.SHA: (1, 3, 6, 1, 6, 3, 10, 1, 1, 3),
                   AuthProtocol.SHA224: hmacsha2.HmacSha2.SHA224_SERVICE_ID,
                   AuthProtocol.SHA256: hmacsha2.HmacSha2.SHA256_SERVICE_ID,
                   AuthProtocol.SHA384: hmacsha2.HmacSha2.SAH384_SERVICE_ID,
                   AuthProtocol.SHA512: hmacsha2.HmacSha2.SHA512_SERVICE_ID}
PYSNMP_PRIV = {PrivProtocol.AES: aes.Aes, PrivProtocol.AES192: aes192.AesBlumenthal192,
               PrivProtocol.AES256: aes256.AesBlumenthal256}


@pytest.mark.parametrize("user", [u for u in USERS if u.auth], ids=lambda u: u.name.decode())
def test_localized_keys_match_pysnmp(user: UsmUser) -> None:
    assert user.auth is not None
    keys = localized_keys(user, ENGINE)
    ku = localkey.hash_passphrase(user.auth_passphrase, HASHES[user.auth])
    assert keys.auth_key == bytes(localkey.localize_key(ku, univ.OctetString(ENGINE), HASHES[user.auth]))
    if user.priv is None:
        assert keys.priv_key == b""
        return
    service = PYSNMP_PRIV[user.priv]()
    auth_id = PYSNMP_AUTH_IDS[user.auth]
    pku = service.hash_passphrase(auth_id, user.priv_passphrase)
    assert keys.priv_key == bytes(service.localize_key(auth_id, pku, univ.OctetString(ENGINE)))
    assert len(keys.priv_key) == user.priv.value


@pytest.mark.parametrize("priv", list(PrivProtocol), ids=lambda p: p.name)
def test_aes_cfb_decrypts_with_pysnmp(priv: PrivProtocol) -> None:
    user = UsmUser(b"x", AuthProtocol.SHA, b"auth-pass", priv, b"priv-pass")
    key = localized_keys(user, ENGINE).priv_key
    salt = (123456789).to_bytes(8, "big")
    plain = encode_scoped_pdu(ENGINE, b"", encode_pdu(RESPONSE))
    ciphertext = encrypt(key, 3, 500, salt, plain)
    assert len(ciphertext) == len(plain) and ciphertext != plain
    theirs = PYSNMP_PRIV[priv]().decrypt_data(univ.OctetString(key), (3, 500, list(salt)),
                                              univ.OctetString(ciphertext))
    assert bytes(theirs) == plain == decrypt(key, 3, 500, salt, ciphertext)


@settings(max_examples=200, deadline=None)
@given(key=st.binary(min_size=16, max_size=16) | st.binary(min_size=32, max_size=32),
       boots=st.integers(0, 2**31 - 1), etime=st.integers(0, 2**31 - 1),
       salt=st.binary(min_size=8, max_size=8), plain=st.binary(max_size=200))
def test_cfb_decrypt_with_one_ecb_call_equals_cfb(key: bytes, boots: int, etime: int,
                                                  salt: bytes, plain: bytes) -> None:
    ciphertext = encrypt(key, boots, etime, salt, plain)
    ecb = block_encryptor(AES(key))
    assert cfb_decrypt(ecb, boots, etime, salt, ciphertext) == plain
    assert cfb_decrypt(ecb, boots, etime, salt, ciphertext) == plain  # the context is reusable


def test_user_validation() -> None:
    with pytest.raises(ValueError, match="8 characters"):
        UsmUser(b"u", AuthProtocol.SHA, b"short")
    with pytest.raises(ValueError, match="authentication"):
        UsmUser(b"u", None, b"", PrivProtocol.AES, b"priv-pass")
    with pytest.raises(ValueError, match=r"1\.\.32"):
        UsmUser(b"x" * 33)
    user = UsmUser(b"u", AuthProtocol.SHA, b"secret-auth", PrivProtocol.AES, b"secret-priv")
    assert "secret" not in repr(user) and "secret" not in repr(localized_keys(user, ENGINE))
    assert user.flags == MsgFlags.AUTH | MsgFlags.PRIV


# --- the v3 message codec -----------------------------------------------------------------------


def test_v3_encoding_reads_with_pysnmp_specs() -> None:
    user = USERS[-1]  # SHA-512 + AES-256
    raw = answer(user)
    assert message_version(raw) == 3
    msg, rest = ber_decoder.decode(raw, asn1Spec=SNMPv3Message())
    assert not rest
    header = msg["msgGlobalData"]
    assert int(header["msgID"]) == 4242 and int(header["msgMaxSize"]) == 65507
    assert bytes(header["msgFlags"]) == b"\x07" and int(header["msgSecurityModel"]) == 3
    usm, rest = ber_decoder.decode(bytes(msg["msgSecurityParameters"]),
                                   asn1Spec=UsmSecurityParameters())
    assert not rest
    assert bytes(usm["msgAuthoritativeEngineId"]) == ENGINE
    assert (int(usm["msgAuthoritativeEngineBoots"]), int(usm["msgAuthoritativeEngineTime"])) == (
        3, 500)
    assert bytes(usm["msgUserName"]) == user.name
    assert len(bytes(usm["msgAuthenticationParameters"])) == 48
    assert bytes(usm["msgPrivacyParameters"]) == (99).to_bytes(8, "big")
    ours = decode_v3_message(raw)
    assert ours.data == bytes(msg["msgData"]["encryptedPDU"])
    assert raw[ours.auth_offset:ours.auth_offset + 48] == ours.usm.auth_params


def test_plaintext_scoped_pdu_round_trip() -> None:
    scoped = encode_scoped_pdu(ENGINE, b"ctx", encode_pdu(RESPONSE))
    assert decode_scoped_pdu(scoped) == ScopedPdu(ENGINE, b"ctx", RESPONSE)
    raw, offset = encode_v3_message(7, 1500, MsgFlags.REPORTABLE,
                                    UsmParameters(ENGINE, 1, 2, b"me", b"", b""), scoped)
    msg = decode_v3_message(raw)
    assert msg == V3Message(7, 1500, MsgFlags.REPORTABLE, 3,
                            UsmParameters(ENGINE, 1, 2, b"me", b"", b""), offset, scoped)


def test_discovery_request_is_empty_and_unauthenticated() -> None:
    msg = decode_v3_message(discovery_request(55))
    assert msg.flags == MsgFlags.REPORTABLE and msg.usm == UsmParameters(b"", 0, 0, b"", b"", b"")
    assert decode_scoped_pdu(msg.data).pdu == Pdu(PduType.GET_REQUEST, 55)


# --- round trips --------------------------------------------------------------------------------

values = st.one_of(
    st.integers(-(2**31), 2**31 - 1), st.binary(max_size=64),
    st.integers(0, 2**32 - 1).map(Gauge32), st.integers(0, 2**64 - 1).map(Counter64),
)
oids = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=12).map(lambda t: (1, 3, *t))


@settings(max_examples=150, deadline=None)
@given(user=st.sampled_from(USERS), engine=st.binary(min_size=5, max_size=32),
       boots=st.integers(0, 2**31 - 2), etime=st.integers(0, 2**31 - 1),
       msg_id=st.integers(0, 2**31 - 1), salt=st.integers(0, 2**64 - 1),
       varbinds=st.lists(st.tuples(oids, values), max_size=20))
def test_wrap_unwrap_round_trip(user: UsmUser, engine: bytes, boots: int, etime: int,
                                msg_id: int, salt: int, varbinds: list[Any]) -> None:
    pdu = Pdu(PduType.RESPONSE, msg_id, 0, 0, tuple(varbinds))
    raw = wrap_request(user, EngineClock(engine, boots, etime, NOW), msg_id, encode_pdu(pdu),
                       salt, NOW)
    msg = decode_v3_message(raw)
    assert (msg.msg_id, msg.usm.engine_boots, msg.usm.engine_time) == (msg_id, boots, etime)
    assert msg.flags == user.flags | MsgFlags.REPORTABLE
    clock = EngineClock(engine, boots, etime, NOW)
    assert unwrap(msg, raw, user, clock, NOW) == ScopedPdu(engine, b"", pdu)


# --- forged, tampered, truncated, replayed ------------------------------------------------------

SECURE = [u for u in USERS if u.auth]


@settings(max_examples=300, deadline=None)
@given(user=st.sampled_from(SECURE), data=st.data())
def test_any_flipped_bit_is_refused(user: UsmUser, data: st.DataObject) -> None:
    raw = bytearray(answer(user))
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= 1 << data.draw(st.integers(0, 7))
    with pytest.raises((UsmDrop, SnmpDecodeError)):
        open_answer(bytes(raw), user)


@pytest.mark.parametrize("user", SECURE[::3], ids=lambda u: u.name.decode())
def test_every_truncation_is_a_decode_error(user: UsmUser) -> None:
    raw = answer(user)
    for n in range(len(raw)):
        with pytest.raises(SnmpDecodeError):
            decode_v3_message(raw[:n])


@settings(max_examples=300, deadline=None)
@given(junk=st.binary(max_size=300))
def test_garbage_is_a_decode_error_or_a_drop(junk: bytes) -> None:
    for raw in (junk, b"\x30" + bytes([len(junk) & 0x7F]) + b"\x02\x01\x03" + junk):
        with contextlib.suppress(UsmDrop, SnmpDecodeError):
            open_answer(raw, SECURE[0])


def test_replay_outside_the_time_window_is_refused() -> None:
    user = SECURE[-1]
    raw = answer(user, etime=500)
    # our clock has seen the agent at 500 s and TIME_WINDOW + 1 s have gone by since
    clock = EngineClock(ENGINE, 3, 500, NOW)
    with pytest.raises(UsmDrop) as caught:
        open_answer(raw, user, clock, now=NOW + TIME_WINDOW + 1)
    assert caught.value.kind is UsmErrorKind.NOT_IN_TIME_WINDOW
    # within the window it is fine, and a message from an older boot never is
    assert open_answer(raw, user, EngineClock(ENGINE, 3, 500, NOW), now=NOW + TIME_WINDOW - 1)
    with pytest.raises(UsmDrop):
        open_answer(answer(user, boots=2), user, EngineClock(ENGINE, 3, 500, NOW))


def test_newer_boots_advance_the_clock() -> None:
    user = SECURE[0]
    clock = EngineClock(ENGINE, 3, 500, NOW)
    open_answer(answer(user, boots=4, etime=2), user, clock, now=NOW + 10)
    assert clock.estimate(NOW + 20) == (4, 12)


def test_authenticated_not_in_time_window_report_sets_the_clock_back() -> None:
    user = SECURE[0]
    report = Pdu(PduType.REPORT, 4242, 0, 0, (((1, 3, 6, 1, 6, 3, 15, 1, 1, 2, 0), 9),))
    clock = EngineClock(ENGINE, 3, 5000, NOW)  # we think the agent is far ahead
    scoped = open_answer(answer(user, report, etime=100), user, clock)
    assert report_kind(scoped.pdu) == (UsmErrorKind.NOT_IN_TIME_WINDOW,
                                       "usmStatsNotInTimeWindows")
    assert clock.estimate(NOW) == (3, 100)


def test_unauthenticated_response_to_secure_request_is_refused() -> None:
    user = SECURE[0]
    plain = answer(UsmUser(user.name))
    with pytest.raises(UsmDrop, match="unauthenticated"):
        open_answer(plain, user)
    # an unauthenticated Report is accepted: it is how agents say what went wrong
    report = Pdu(PduType.REPORT, 0, 0, 0, (((1, 3, 6, 1, 6, 3, 15, 1, 1, 3, 0), 1),))
    scoped = open_answer(answer(UsmUser(user.name), report), user)
    assert report_kind(scoped.pdu)[0] is UsmErrorKind.UNKNOWN_USER_NAME


def test_answer_for_another_user_or_engine_is_refused() -> None:
    user = SECURE[0]
    other = UsmUser(b"other", user.auth, user.auth_passphrase, user.priv, user.priv_passphrase)
    with pytest.raises(UsmDrop, match="user name"):
        open_answer(answer(other), user)
    with pytest.raises(UsmDrop, match="engine ID"):
        open_answer(answer(user), user, EngineClock(b"another-engine", 3, 500, NOW))


def test_report_names() -> None:
    names = {kind: report_kind(Pdu(PduType.REPORT, 0, 0, 0, ((oid, 1),)))[1]
             for oid, kind in REPORT_KINDS.items()}
    assert names == {
        UsmErrorKind.UNSUPPORTED_SEC_LEVEL: "usmStatsUnsupportedSecLevels",
        UsmErrorKind.NOT_IN_TIME_WINDOW: "usmStatsNotInTimeWindows",
        UsmErrorKind.UNKNOWN_USER_NAME: "usmStatsUnknownUserNames",
        UsmErrorKind.UNKNOWN_ENGINE_ID: "usmStatsUnknownEngineIDs",
        UsmErrorKind.WRONG_DIGEST: "usmStatsWrongDigests",
        UsmErrorKind.DECRYPTION_ERROR: "usmStatsDecryptionErrors",
    }
    other = report_kind(Pdu(PduType.REPORT, 0, 0, 0, (((1, 3, 6, 1, 6, 3, 12, 1, 5, 0), 1),)))
    assert other == (UsmErrorKind.OTHER_REPORT, "snmpUnknownContexts")


def test_every_usm_error_has_a_device_error_kind() -> None:
    from dcim.reasons import ErrorKind

    for kind in UsmErrorKind:
        assert ErrorKind["USM_" + kind.name].value == "usm_" + kind.name.lower()


def test_client_counts_short_and_garbled_datagrams_as_malformed() -> None:
    from dcim.snmp.client import SnmpClient

    client = SnmpClient()  # no socket is opened until a request
    junk = [b"", b"\x30", b"\x30\x81", b"\x30\x84\x02\x01\x03", b"\x30\x03\x02\x01\x03",
            b"\x30\x05\x02\x01\x03\x30\x00", answer(SECURE[0])[:-1]]
    for data in junk:
        client._on_datagram(data, ("127.0.0.1", 161))
    assert client.stats.malformed == len(junk) and client.stats.unmatched == 0
    client._on_datagram(answer(SECURE[0]), ("127.0.0.1", 161))  # well formed, no such request
    assert client.stats.unmatched == 1
