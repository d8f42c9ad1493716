"""The SNMP stack's exception base classes (shared by the client and the security model)."""

from __future__ import annotations


class SnmpError(Exception):
    """Base class of the SNMP client's failures."""


class SnmpTimeout(SnmpError, TimeoutError):
    """No acceptable response arrived after all retries; `refused` counts the datagrams from
    the agent that did arrive but were dropped (undecodable; SNMPv3: wrong digest, outside the
    time window, undecryptable)."""

    def __init__(self, message: str, refused: int = 0, last: str = "") -> None:
        super().__init__(message)
        self.refused = refused
        self.last = last  # why the last of them was dropped
