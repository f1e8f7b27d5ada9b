"""Stopping within a deadline, whatever state Kafka and Redis are in.

A graceful stop talks to its peers (commit, leave the group, flush dead
letters, close Redis), and with a peer gone or hung each of those can wait
for minutes: aiokafka waits for a group coordinator forever, and a frozen
broker accepts connections and never answers. So every step runs in a task
of its own with a timeout (:func:`step`), start-up calls give way to SIGTERM
(:func:`until_stopped`), and a :class:`HardDeadline` ends the process if all
that still overruns: the pod's grace period must never be the one to stop it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import threading
import time
from collections.abc import Awaitable
from typing import Final, TypeVar

import structlog

log = structlog.stdlib.get_logger(__name__)
T = TypeVar("T")

#: Exit status when the hard deadline ends the process.
DEADLINE_EXIT_STATUS: Final = 1
#: After a step overran and was cancelled, how long it may take to unwind (seconds).
UNWIND_S: Final = 0.5
#: Kept free before the hard deadline for the steps after the current one (seconds).
RESERVE_S: Final = 1.0


class HardDeadline:
    """Ends the process ``seconds`` after :meth:`arm` unless :meth:`disarm` came first.

    A timer thread, not a task: it fires even if the event loop itself is
    stuck, and ``os._exit`` skips whatever cleanup hangs. Owned by
    ``__main__``, which arms it on SIGTERM and disarms it once the loop has
    returned.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self._timer: threading.Timer | None = None
        self._at = math.inf

    def arm(self) -> None:
        if self._timer is not None:
            return  # a second signal does not move the deadline
        self._at = time.monotonic() + self.seconds
        self._timer = threading.Timer(self.seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def remaining(self) -> float:
        """Seconds left (infinite when not armed)."""
        return self._at - time.monotonic()

    def budget(self, step_s: float) -> float:
        """What one step may take: its own bound, within what the deadline leaves."""
        return max(0.1, min(step_s, self.remaining() - RESERVE_S))

    def _expire(self) -> None:
        log.error("shutdown deadline passed; exiting now", deadline_s=self.seconds)
        logging.shutdown()  # flush the log line above
        os._exit(DEADLINE_EXIT_STATUS)


async def step(name: str, awaitable: Awaitable[object], timeout_s: float) -> bool:
    """Run one stop step for at most ``timeout_s``; False (logged) if it failed or overran.

    In a task of its own, so an exception it raises (aiokafka's fetcher lets a
    CancelledError of its own escape ``stop()``) ends that step, not the stop.
    """
    task = asyncio.ensure_future(awaitable)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except asyncio.CancelledError:
        task.cancel()
        raise
    if not done:
        task.cancel()
        await asyncio.wait({task}, timeout=UNWIND_S)
        log.warning("stop step overran; abandoned", step=name, timeout_s=round(timeout_s, 2))
        return False
    if task.cancelled():
        log.warning("stop step cancelled itself", step=name)
        return False
    if (error := task.exception()) is not None:
        log.warning("stop step failed", step=name, error=repr(error))
        return False
    return True


async def until_stopped(awaitable: Awaitable[T], stopping: asyncio.Event) -> tuple[bool, T | None]:
    """Await ``awaitable`` unless ``stopping`` is set first: (True, result) or (False, None).

    Its exceptions propagate; on shutdown it is cancelled and given UNWIND_S to unwind.
    """
    task = asyncio.ensure_future(awaitable)
    stop = asyncio.ensure_future(stopping.wait())
    try:
        done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        stop.cancel()
    if task in done:
        return True, task.result()
    task.cancel()
    await asyncio.wait({task}, timeout=UNWIND_S)
    if task.done() and not task.cancelled():
        task.exception()  # what it raised while being stopped is no failure: retrieved, dropped
    return False, None
