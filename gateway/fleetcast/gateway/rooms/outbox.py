"""Per-connection bounded send buffers, with priority frames ahead of positions.

A frame goes straight to the transport when the connection is open, has no
backlog and its transport takes it (the common case: written to the socket at
once, no added latency). Otherwise it waits in the connection's own two
queues, priority first, and one pump task moves frames on as the transport
drains. A transport takes frames only below its watermark (outlet.py: bytes
unsent on a websocket, packets held for a long-poll), so a priority frame
waits behind at most that much of positions.

The bound ``max_buffered`` applies to a connection whose transport has
stopped taking frames (a slow client): its oldest positions are shed down to
the bound, and when only priority frames are left over it, it is cut off as a
slow consumer (it reconnects and recovers with ``since``). A client that
keeps reading may briefly hold more (a burst of one big pub/sub message), up
to :data:`BURST_FACTOR` times the bound. Nothing here awaits a client, so a
slow one never slows the others.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Final, Protocol

import structlog

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.registry import Connection
from fleetcast.gateway.transport.packets import Frame

log = structlog.stdlib.get_logger(__name__)

#: How often stalled connections are revisited (seconds).
PUMP_INTERVAL_S: Final = 0.005
#: A connection that still reads may hold this many times the bound, briefly.
BURST_FACTOR: Final = 4

#: Called (at most once per connection) when one must be cut off.
CutOff = Callable[[Connection, str], None]


class Transport(Protocol):
    """What the outbox needs of the transport (transport/writer.py's EngineIOTransport)."""

    def offer(self, conn: Connection, frame: Frame) -> bool:
        """Send ``frame`` unless ``conn`` is behind (False: the caller keeps it).

        A connection whose transport is gone takes and drops the frame.
        """

    def write(self, conn: Connection, text: str) -> bool:
        """Send one packet to ``conn`` now, behind or not; False when its transport is gone."""


class Outbox:
    """Hands frames to the transport in order, bounded per connection."""

    def __init__(
        self, transport: Transport, metrics: Metrics, *, max_buffered: int, cut_off: CutOff
    ) -> None:
        self._transport = transport
        self._metrics = metrics
        self._max = max_buffered
        self._cut_off = cut_off
        self._backlogged: dict[str, Connection] = {}
        self._wake = asyncio.Event()

    def push(self, conn: Connection, frame: Frame) -> None:
        """Send ``frame`` to ``conn`` now if it can go at once, else buffer it."""
        if conn.close_reason is not None:
            return
        if conn.open and not conn.prio and not conn.bulk and self._transport.offer(conn, frame):
            return
        self._enqueue(conn, frame)

    def open(self, conn: Connection, first: str | None = None) -> None:
        """The client got its CONNECT packet: send ``first``, then what waited."""
        conn.open = True
        if first is not None:
            self._transport.write(conn, first)
        self._flush(conn)

    def forget(self, conn: Connection) -> None:
        self._backlogged.pop(conn.sid, None)
        conn.prio = conn.bulk = None

    def _enqueue(self, conn: Connection, frame: Frame) -> None:
        if frame.priority:
            if conn.prio is None:
                conn.prio = deque()
            conn.prio.append(frame)
        else:
            if conn.bulk is None:
                conn.bulk = deque()
            conn.bulk.append(frame)
        if conn.backlog() > self._max * BURST_FACTOR:
            self._enforce(conn, self._max)
        if conn.open and conn.close_reason is None:
            self._backlogged[conn.sid] = conn
            self._wake.set()

    def _enforce(self, conn: Connection, limit: int) -> None:
        """Shed the oldest positions down to ``limit``; cut off if priority frames exceed it."""
        bulk = conn.bulk
        while bulk and conn.backlog() > limit:
            bulk.popleft()
            self._metrics.shed.inc()
        if conn.backlog() > limit:
            log.warning("slow consumer cut off", sid=conn.sid, org=conn.org)
            self.forget(conn)
            self._cut_off(conn, "slow_consumer")

    def _flush(self, conn: Connection) -> int:
        """Move frames to the transport while it takes them, priority first; returns how many."""
        offer = self._transport.offer
        moved = 0
        for queue in (conn.prio, conn.bulk):
            while queue and offer(conn, queue[0]):
                queue.popleft()
                moved += 1
            if queue:
                break
        if conn.backlog():
            self._backlogged[conn.sid] = conn
            self._wake.set()
        else:
            self._backlogged.pop(conn.sid, None)
        return moved

    def pump_once(self) -> int:
        """One pass over the backlogged connections; returns the frames moved.

        A connection whose transport took nothing is stalled: the bound applies.
        """
        moved = 0
        for conn in list(self._backlogged.values()):
            if conn.close_reason is not None or not conn.open:
                self._backlogged.pop(conn.sid, None)
                continue
            step = self._flush(conn)
            if step == 0 and conn.backlog() > self._max:
                self._enforce(conn, self._max)
            moved += step
        return moved

    async def run(self) -> None:
        """The pump: refill backlogged connections as their transports drain.

        While frames move it only yields (the transports' writers run in
        between); when every backlogged connection is stalled it sleeps.
        """
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._backlogged:
                moved = self.pump_once()
                await asyncio.sleep(0 if moved else PUMP_INTERVAL_S)
