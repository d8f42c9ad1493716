"""A device that answers garbage is told from a silent one (raw UDP peers on loopback).

The fast client drops what cannot be an answer and waits on for a real one; when none comes,
the poll fails as `protocol` with what arrived, not as a `timeout`. An answer carrying another
request id stays a timeout: a late answer to a request given up looks the same.
"""

from __future__ import annotations

import pytest
from support.hostile_peers import SnmpResponder
from support.polling import device, poll

from dcim.profile import SnmpProfile
from dcim.reasons import ErrorKind
from dcim.site import SnmpAuth

PROFILE = SnmpProfile.model_validate({
    "name": "kinds-test", "kind": "pdu", "protocol": "snmp", "description": "error kinds",
    "points": {"power_w": {"oid": "1.3.6.1.4.1.99999.1.0"},
               "outlet_power_w": {"walk": "1.3.6.1.4.1.99999.2", "aggregate": "rows"}},
})
VALUES = {"1.3.6.1.4.1.99999.1.0": 5000, **{f"1.3.6.1.4.1.99999.2.{i}": 100 + i for i in range(1, 5)}}


@pytest.mark.parametrize(("mode", "kind", "says"), [
    ("garbage", ErrorKind.PROTOCOL, "undecodable"),
    ("truncated", ErrorKind.PROTOCOL, "undecodable"),
    ("huge-length", ErrorKind.PROTOCOL, "undecodable"),
    ("wrong-id", ErrorKind.TIMEOUT, "no SNMP response"),
    ("silent", ErrorKind.TIMEOUT, "no SNMP response"),
])
def test_garbage_is_a_protocol_error_and_silence_a_timeout(
        mode: str, kind: ErrorKind, says: str, monkeypatch: pytest.MonkeyPatch) -> None:
    peer = SnmpResponder(VALUES, mode)
    try:
        spec = device(PROFILE, peer.port, SnmpAuth(version=2, community="public"), timeout=0.3)
        result = poll(spec, "fast", monkeypatch)
    finally:
        peer.stop()
    assert not result.up and result.error_kind is kind, (result.error_kind, result.error)
    assert says in (result.error or ""), result.error


def test_the_same_peer_answering_well_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    """The control: the profile and values above read whole from a well-behaved peer."""
    peer = SnmpResponder(VALUES, "good")
    try:
        result = poll(device(PROFILE, peer.port, SnmpAuth(version=2, community="public")),
                      "fast", monkeypatch)
    finally:
        peer.stop()
    assert result.up, result.error
    assert result.values["power_w"] == 5000
    assert result.values["outlet_power_w"] == {str(i): 100 + i for i in range(1, 5)}
