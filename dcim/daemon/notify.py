"""systemd's notify protocol over $NOTIFY_SOCKET, with no dependency on systemd itself."""

from __future__ import annotations

import contextlib
import os
import socket


class Notifier:
    """Sends READY=1, STATUS=..., WATCHDOG=1 and STOPPING=1 when run under systemd."""

    def __init__(self, address: str | None = None):
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET")
        self._address: str | bytes | None = None
        if address:
            # A leading @ names a socket in the abstract namespace.
            self._address = b"\0" + address[1:].encode() if address.startswith("@") else address
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        """True when there is a notify socket to talk to."""
        return self._address is not None

    def watchdog_interval(self) -> float | None:
        """Half of WatchdogSec (systemd's advice), if the watchdog is on for this process."""
        usec = os.environ.get("WATCHDOG_USEC")
        pid = os.environ.get("WATCHDOG_PID")
        if not usec or (pid and pid != str(os.getpid())):
            return None
        return int(usec) / 2_000_000

    def send(self, **fields: str) -> None:
        """Send KEY=value lines in one datagram; silently a no-op outside systemd."""
        if self._address is None:
            return
        if self._sock is None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        message = "\n".join(f"{k}={v}" for k, v in fields.items()).encode()
        with contextlib.suppress(OSError):  # systemd went away: nothing useful to do
            self._sock.sendto(message, self._address)

    def ready(self, status: str) -> None:
        """Tell systemd start-up is complete."""
        self.send(READY="1", STATUS=status)

    def status(self, status: str) -> None:
        """Update the one-line status shown by systemctl status."""
        self.send(STATUS=status)

    def watchdog(self) -> None:
        """Pet the watchdog."""
        self.send(WATCHDOG="1")

    def stopping(self) -> None:
        """Tell systemd shutdown has begun."""
        self.send(STOPPING="1")
