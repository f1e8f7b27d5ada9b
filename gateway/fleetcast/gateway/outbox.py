"""Per-connection bounded send buffers, with priority frames ahead of positions.

A frame goes straight to the transport when the connection is open, has no
backlog and its transport queue is short (the common case: no added latency).
Otherwise it waits in the connection's own two queues, priority first, and
one pump task moves frames on as the transport drains. A connection's
transport queue is never filled past :data:`TRANSPORT_WATERMARK`, so a
priority frame waits behind at most that many positions.

Over ``max_buffered`` frames, the oldest position is shed; when only priority
frames are left the connection is cut off as a slow consumer (it reconnects
and recovers with ``since``). A slow client never slows the others: nothing
here awaits a client.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from typing import Final

import structlog

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.registry import Connection, Frame
from fleetcast.gateway.transport import Transport

log = structlog.stdlib.get_logger(__name__)

#: Packets allowed in a connection's transport queue before frames wait in ours.
TRANSPORT_WATERMARK: Final = 16
#: How often backlogged connections are revisited (seconds).
PUMP_INTERVAL_S: Final = 0.005

#: Called (at most once per connection) when one must be cut off.
CutOff = Callable[[Connection, str], None]


class Outbox:
    """Hands frames to the transport in order, bounded per connection."""

    def __init__(
        self, transport: Transport, metrics: Metrics, *, max_buffered: int, cut_off: CutOff
    ) -> None:
        self.transport = transport
        self._metrics = metrics
        self._max = max_buffered
        self._cut_off = cut_off
        self._backlogged: dict[str, Connection] = {}
        self._wake = asyncio.Event()

    def push(self, conn: Connection, frame: Frame) -> None:
        """Send ``frame`` to ``conn`` now if it can go at once, else buffer it."""
        if conn.close_reason is not None:
            return
        if (
            conn.open
            and not conn.prio
            and not conn.bulk
            and self.transport.pending(conn) < TRANSPORT_WATERMARK
        ):
            self.transport.write(conn, frame.text)
            return
        self._enqueue(conn, frame)

    def open(self, conn: Connection, first: str | None = None) -> None:
        """The client got its CONNECT packet: send ``first``, then what waited."""
        conn.open = True
        if first is not None:
            self.transport.write(conn, first)
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
        if conn.backlog() > self._max:
            self._shed(conn)
        if conn.open and conn.close_reason is None:
            self._backlogged[conn.sid] = conn
            self._wake.set()

    def _shed(self, conn: Connection) -> None:
        if conn.bulk:
            conn.bulk.popleft()
            self._metrics.shed.inc()
            return
        log.warning("slow consumer cut off", sid=conn.sid, org=conn.org)
        self.forget(conn)
        self._cut_off(conn, "slow_consumer")

    def _flush(self, conn: Connection) -> bool:
        """Move frames to the transport while it has room; True when all went."""
        transport = self.transport
        room = TRANSPORT_WATERMARK - transport.pending(conn)
        for queue in (conn.prio, conn.bulk):
            while queue and room > 0:
                if not transport.write(conn, queue.popleft().text):
                    queue.clear()
                    break
                room -= 1
        if conn.backlog():
            self._backlogged[conn.sid] = conn
            self._wake.set()
            return False
        self._backlogged.pop(conn.sid, None)
        return True

    async def run(self) -> None:
        """The pump: revisit backlogged connections until their queues drain."""
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._backlogged:
                for conn in list(self._backlogged.values()):
                    if conn.close_reason is not None or not conn.open:
                        self._backlogged.pop(conn.sid, None)
                    else:
                        self._flush(conn)
                if self._backlogged:
                    await asyncio.sleep(PUMP_INTERVAL_S)
