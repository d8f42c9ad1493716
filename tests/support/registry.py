"""The servers one test (or the session) started, stopped together at its end."""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import pytest

from support.servers import ManagedServer, SnmpV3User

S = TypeVar("S", bound=ManagedServer)

# The v3 authPriv user every snmpd fixture knows.
SNMP_V3_USER = SnmpV3User()


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
