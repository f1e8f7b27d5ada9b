"""Engine.IO heartbeats of every socket from one task.

python-engineio starts a task per socket that sleeps ``ping_interval`` and
sends a PING, plus a service task that visits every socket over
``ping_timeout`` with one ``wait_for`` each: a task, a timer and a future per
idle connection, and steady CPU with 10,000 of them. Every socket waits the
same interval, so the due times arrive in the order they were scheduled: two
FIFO queues (pings due, answers due) and one task serve them all.

The Engine.IO v4 rule is unchanged: the server PINGs ``ping_interval`` after
the last PONG (or the handshake); a socket that has not answered
``ping_timeout`` after a PING is closed with reason ``ping timeout``.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import structlog
from engineio import packet as eio_packet

log = structlog.stdlib.get_logger(__name__)


class Pingable(Protocol):
    """What the heartbeat needs of a python-engineio socket."""

    last_ping: float | None
    closing: bool
    closed: bool
    queue: Any


#: Sockets due within this many seconds are served together: 10,000 sockets
#: need a few wake-ups a second, not one per socket.
TICK_S: Final = 0.1

#: Called for a socket that did not answer its PING in time.
OnTimeout = Callable[[Any], Awaitable[None]]


class Heartbeat:
    """Due PINGs and due PONGs of every socket, served by :meth:`run`."""

    def __init__(
        self,
        interval_s: float,
        timeout_s: float,
        on_timeout: OnTimeout,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        self._on_timeout = on_timeout
        self._clock = clock
        self._pings: deque[tuple[float, Pingable]] = deque()
        self._answers: deque[tuple[float, Pingable, float]] = deque()
        self._wake: asyncio.Event | None = None

    def schedule(self, sock: Pingable) -> None:
        """PING ``sock`` one interval from now (after its handshake, or its PONG)."""
        idle = not self._pings and not self._answers
        self._pings.append((self._clock() + self.interval_s, sock))
        if idle and self._wake is not None:
            self._wake.set()

    def send_due(self, now: float) -> int:
        """PING every socket whose time has come; returns how many."""
        pings, sent = self._pings, 0
        while pings and pings[0][0] <= now:
            _, sock = pings.popleft()
            if sock.closing or sock.closed:
                continue
            stamp = sock.last_ping = time.time()
            sock.queue.put_nowait(eio_packet.Packet(eio_packet.PING))
            self._answers.append((now + self.timeout_s, sock, stamp))
            sent += 1
        return sent

    def overdue(self, now: float) -> list[Pingable]:
        """Sockets whose PING went unanswered for ``timeout_s``."""
        answers, late = self._answers, []
        while answers and answers[0][0] <= now:
            _, sock, stamp = answers.popleft()
            if sock.last_ping == stamp and not sock.closing and not sock.closed:
                late.append(sock)
        return late

    def next_due(self) -> float | None:
        heads = [q[0][0] for q in (self._pings, self._answers) if q]
        return min(heads) if heads else None

    async def run(self) -> None:
        """Serve the queues until cancelled (the app's cleanup context owns this task)."""
        self._wake = asyncio.Event()
        while True:
            now = self._clock()
            self.send_due(now)
            for sock in self.overdue(now):
                try:
                    await self._on_timeout(sock)
                except Exception:  # one socket's close never stops the others' heartbeat
                    log.exception("closing a silent socket failed")
            due = self.next_due()
            if due is None:
                self._wake.clear()
                await self._wake.wait()
            else:
                await asyncio.sleep(max(TICK_S, due - self._clock()))
