"""Log each kind of ongoing problem once until it clears (the metrics carry the rest)."""

from __future__ import annotations

import logging


class LogOnce:
    """Problems by key: the first report of a key is logged at ERROR, repeats are not, until
    clear() forgets it (its next occurrence is news again)."""

    def __init__(self, log: logging.Logger):
        self.log = log
        self._active: set[str] = set()

    def problem(self, key: str, message: str) -> None:
        """Report a problem; logged only if `key` is not already active."""
        if key not in self._active:
            self._active.add(key)
            self.log.error("%s", message)

    def clear(self, *keys: str) -> bool:
        """The problems under these keys are over; True if any of them was active."""
        was = bool(self._active.intersection(keys))
        self._active.difference_update(keys)
        return was

    def __contains__(self, key: str) -> bool:
        return key in self._active
