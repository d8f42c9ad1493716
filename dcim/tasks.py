"""Ending asyncio tasks within a bound (scheduler, sinks, sources, demo)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from typing import Any

log = logging.getLogger("dcim")

# How long a cancelled task may take to end before it is given up on.
CANCEL_WAIT_S = 2.0


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any]],
                          timeout: float | None) -> set[asyncio.Task[Any]]:
    """Cancel tasks and wait until they end or timeout passes (None: no bound); return the rest.

    Cancels again every half second: Python 3.11's wait_for can swallow a cancellation that
    races with a completed operation (fixed in 3.12), so one cancel() may not end a task, and
    awaiting the task after it would then wait forever. An exception a task ended with is
    logged rather than left unretrieved.
    """
    tasks = list(tasks)
    pending = {t for t in tasks if not t.done()}
    deadline = None if timeout is None else time.monotonic() + timeout
    while pending:
        step = 0.5 if deadline is None else min(0.5, deadline - time.monotonic())
        if step <= 0:
            break
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=step)
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            log.error("task %s ended with %r", task.get_name(), task.exception())
    return pending
