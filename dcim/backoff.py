"""Exponential backoff with jitter, for every retry against a server that may be away."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable

# The longest pause between two attempts to reach a broker or server (unless configured).
MAX_BACKOFF_S = 60.0


class Backoff:
    """1 s, 2 s, 4 s ... up to `maximum`, each stretched by up to `jitter` so that many clients
    cut off together do not come back in lockstep; reset() after a success."""

    def __init__(self, initial: float = 1.0, maximum: float = MAX_BACKOFF_S, jitter: float = 0.3):
        self.initial = initial
        self.maximum = maximum
        self.jitter = jitter
        self._next = initial

    def next(self) -> float:
        """The pause before the next attempt (and double the one after it)."""
        delay = self._next * random.uniform(1.0, 1.0 + self.jitter)
        self._next = min(self._next * 2, self.maximum)
        return delay

    def reset(self) -> None:
        """Back to the initial pause (the last attempt succeeded)."""
        self._next = self.initial


async def pause(seconds: float, wake: asyncio.Event, stopping: Callable[[], bool]) -> None:
    """Sleep through a backoff pause that only stopping cuts short.

    `wake` is the owner's "something happened" event: it is set by new work as well as by
    stop, so each wake-up checks stopping() and goes back to sleep if not.
    """
    deadline = time.monotonic() + seconds
    while not stopping() and time.monotonic() < deadline:
        wake.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(wake.wait(), deadline - time.monotonic())
