"""The servers one test (or the session) started, stopped together at its end."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pytest

from dcim.site import SnmpAuth
from support.servers import ManagedServer, SnmpV3User

S = TypeVar("S", bound=ManagedServer)

# The v3 authPriv user every snmpd fixture knows.
SNMP_V3_USER = SnmpV3User()

# dcim's name of each protocol dcim's own SNMP stack speaks -> net-snmp's name of it.
FAST_AUTH = {"SHA": "SHA", "SHA224": "SHA-224", "SHA256": "SHA-256", "SHA384": "SHA-384",
             "SHA512": "SHA-512"}
FAST_PRIV = {"AES": "AES", "AES192": "AES-192", "AES256": "AES-256"}


def v3_user(auth: str | None, priv: str | None) -> SnmpV3User:
    """A net-snmp user for one auth x priv combination (dcim's names; None: not used)."""
    name = f"u-{(auth or 'noauth').lower()}-{(priv or 'nopriv').lower()}"
    return SnmpV3User(name=name, auth_protocol=FAST_AUTH[auth] if auth else "",
                      auth_key=f"auth-{name}", priv_protocol=FAST_PRIV[priv] if priv else "",
                      priv_key=f"priv-{name}")


# Every security level and auth x priv combination the fast path ships.
SNMP_V3_MATRIX = [v3_user(None, None)] + [
    v3_user(auth, priv) for auth in FAST_AUTH for priv in (None, *FAST_PRIV)
]


def dcim_auth(user: SnmpV3User) -> SnmpAuth:
    """dcim's resolved credentials for a net-snmp user made by v3_user (or SNMP_V3_USER)."""
    to_dcim = {v: k for k, v in FAST_AUTH.items()} | {v: k for k, v in FAST_PRIV.items()}
    auth = to_dcim[user.auth_protocol] if user.auth_protocol else None
    priv = to_dcim[user.priv_protocol] if user.priv_protocol else None
    return SnmpAuth(version=3, user=user.name, auth_protocol=auth,
                    auth_key=user.auth_key if auth else None, priv_protocol=priv,
                    priv_key=user.priv_key if priv else None)


class ServerRegistry:
    """Starts servers for one scope and stops them all at its end."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self.tmp_path_factory = tmp_path_factory
        self.servers: list[ManagedServer] = []

    def workdir(self, name: str) -> Path:
        """A fresh directory for one server."""
        return self.tmp_path_factory.mktemp(name)

    def add(self, server: S, start: bool = True) -> S:
        """Track `server` (and start it unless start=False)."""
        self.servers.append(server)
        if start:
            server.start()
        return server

    def stop_all(self) -> None:
        """Stop in reverse start order, so consumers go before what they depend on."""
        errors = []
        for server in reversed(self.servers):
            try:
                server.stop()
            except Exception as exc:  # keep stopping the rest
                errors.append(f"{server!r}: {exc!r}")
        if errors:
            raise RuntimeError("could not stop: " + "; ".join(errors))
