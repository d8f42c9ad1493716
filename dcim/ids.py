"""The one rule for every name that becomes a Prometheus label, an InfluxDB tag or an MQTT topic.

Site, rack, device, hall, row, tenant, feed and credential names, and each level of an MQTT
topic prefix, are letters, digits and `_ . : -`, starting with a letter or digit, at most 128
characters. Nothing in such a name ever needs escaping, so a config cannot forge a series
(a newline in an InfluxDB tag starts a new line) or subscribe where it publishes (`+`, `#`).
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

ID_PATTERN = r"[A-Za-z0-9][A-Za-z0-9_.:-]*"
MAX_ID = 128


def is_id(value: str) -> bool:
    """Whether value is a valid name (fullmatch: `$` would also match before a final newline)."""
    return len(value) <= MAX_ID and re.fullmatch(ID_PATTERN, value) is not None


def check_id(value: str) -> str:
    """The value if it is a valid name, else a ValueError saying what is allowed."""
    if not is_id(value):
        raise ValueError(
            f"invalid id {value!r}: use letters, digits and _ . : - (starting with a letter or digit)"
        )
    return value


def check_topic(value: str) -> str:
    """The value if each /-separated level is a valid name (no wildcards, no empty level)."""
    if len(value) > 512 or not all(is_id(level) for level in value.split("/")):
        raise ValueError(
            f"invalid topic {value!r}: use levels of letters, digits and _ . : - separated by /"
            " (no wildcards + #, no empty level)"
        )
    return value


Id = Annotated[str, AfterValidator(check_id)]
Topic = Annotated[str, AfterValidator(check_topic)]
