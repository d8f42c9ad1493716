"""Why a point is unavailable and why a device could not be read: the typed vocabulary shared
by drivers, decode, the scheduler, the sinks and the CLI.

The values are the `reason` label of `dcim_invalid_readings_total` and the `kind` label of
`dcim_device_poll_errors_total`: a closed set, so the series stay bounded.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Reason(StrEnum):
    """Why one point of a device that answered gives no usable value."""

    # The device does not have the point: noSuchObject/noSuchInstance/noSuchName, a table
    # without rows, rows it answers Null for, Modbus exception 1 or 2 for that register only.
    # Not an invalid reading: never counted, never alerted on.
    UNSUPPORTED = "unsupported"
    # The device says "no reading": a sentinel the profile declares (-1, 0xFFFF, -32768), NaN,
    # a state code outside the profile's map.
    SENTINEL = "sentinel"
    # A scaled value outside the point's physical range (negative power, 2300 V at a UPS).
    OUT_OF_RANGE = "out_of_range"
    # Each value is in range, but together they cannot be true (0 W while 14.5 A flows).
    IMPLAUSIBLE = "implausible"
    # A scale factor or decimal-digits value outside -6..9: the maths would be meaningless.
    BAD_SCALE = "bad_scale"
    # A string where a number is expected, a value of an unexpected SNMP type.
    WRONG_TYPE = "wrong_type"
    # The device refused or lost this value (Modbus exception 3/4/6..., varbind not returned).
    READ_ERROR = "read_error"
    # A pushed value (BMS over MQTT) not refreshed within max_age: old, not wrong.
    STALE = "stale"

    @property
    def counted(self) -> bool:
        """Whether it counts as an invalid reading (exported, alerted on)."""
        return self not in (Reason.UNSUPPORTED, Reason.STALE)


@dataclass(frozen=True, slots=True)
class PointError:
    """One point's failure: a typed reason and a specific human message."""

    reason: Reason
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


class ErrorKind(StrEnum):
    """Why a device as a whole could not be read (no values at all)."""

    TIMEOUT = "timeout"              # no answer within timeout x (retries + 1)
    DEADLINE = "deadline"            # the whole poll ran past its deadline
    CONNECT = "connect"              # TCP connection refused or not established
    NETWORK = "network"              # a socket error (unreachable, reset)
    RESOLVE = "resolve"              # the host name does not resolve
    PROTOCOL = "protocol"            # garbage answers (and no valid one), an error status, a short answer
    EXCEPTION = "exception"          # Modbus: every register read refused with an exception
    PROFILE_MISMATCH = "profile_mismatch"  # sysObjectID says it is another model
    # `profile: auto` and the device has not answered sysObjectID yet: asked again each poll
    UNIDENTIFIED = "unidentified"
    # Redfish (HTTP): TLS handshake or certificate refused; 401 or login refused; an HTTP error
    # status; the device resource 404s; an answer that is not JSON (an HTML login page); a body
    # over the size bound; no resource configured and the collection has not exactly one.
    TLS = "tls"
    AUTH = "auth"
    HTTP_STATUS = "http_status"
    NOT_FOUND = "not_found"
    NOT_JSON = "not_json"
    TOO_LARGE = "too_large"
    RESOURCE = "resource"
    INTERNAL = "internal"            # a bug in dcim surfaced by this poll (logged with traceback)
    CONFIG = "config"                # credentials the SNMP stack refuses (v3 passphrase < 8)
    # SNMPv3: the agent's usmStats report (dcim.snmp.security.UsmErrorKind, one kind each)
    USM_UNSUPPORTED_SEC_LEVEL = "usm_unsupported_sec_level"
    USM_NOT_IN_TIME_WINDOW = "usm_not_in_time_window"  # still refused after a re-sync
    USM_UNKNOWN_USER_NAME = "usm_unknown_user_name"
    USM_UNKNOWN_ENGINE_ID = "usm_unknown_engine_id"
    USM_WRONG_DIGEST = "usm_wrong_digest"            # wrong auth key or protocol
    USM_DECRYPTION_ERROR = "usm_decryption_error"    # wrong priv key or protocol
    USM_OTHER_REPORT = "usm_other_report"            # unknown context, invalid message, ...


def worst(errors: list[PointError]) -> Reason:
    """The reason to report for several failures: any counted reason beats 'unsupported'."""
    for err in errors:
        if err.reason.counted:
            return err.reason
    return errors[0].reason if errors else Reason.UNSUPPORTED
