"""The gateway's own receipt fact: which receipted events it wrote to which connection.

:class:`ReceiptingTransport` sits between the outbox and the transport (the
outbox's ``Transport`` seam, nothing else changes): every path that sends a
frame (live delivery, replay, recovery) goes through its :meth:`offer`. When
the transport takes a frame of a receipted event type, it is on the socket
(or, on long-polling, in the packet queue of the next GET): the connection
remembers the delivery (so it may answer it, and only it) and a ``sent``
fact waits in :attr:`facts` for the flusher (edge/receipts.py) to publish.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from fleetcast.gateway.rooms.outbox import Transport
from fleetcast.gateway.rooms.registry import Connection
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol import receipts

#: Deliveries a connection may still answer; the oldest is forgotten beyond.
MAX_DELIVERIES: Final = 512
#: Sent facts held for the flusher; beyond it new ones are counted, not kept
#: (Kafka away for long: the client receipts still tell the story).
MAX_FACTS: Final = 100_000


class ReceiptingTransport:
    """The outbox's transport, noting each receipted frame it takes."""

    def __init__(
        self,
        inner: Transport,
        event_types: frozenset[str],
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._inner = inner
        self._types = event_types
        self._clock = clock
        self.facts: list[tuple[receipts.Tag, receipts.Recipient]] = []
        self.dropped = 0

    def offer(self, conn: Connection, frame: Frame) -> bool:
        taken = self._inner.offer(conn, frame)
        tag = frame.tag
        if taken and tag is not None and tag.event_type in self._types:
            self.note(conn, tag)
        return taken

    def write(self, conn: Connection, text: str) -> bool:
        return self._inner.write(conn, text)

    def note(self, conn: Connection, tag: receipts.Tag) -> None:
        """``conn`` got the receipted event ``tag``: it may answer it; a fact to publish."""
        deliveries = conn.deliveries
        if deliveries is None:
            deliveries = conn.deliveries = {}
        elif len(deliveries) >= MAX_DELIVERIES:
            del deliveries[next(iter(deliveries))]
        deliveries[tag.delivery_id] = tag
        if len(self.facts) < MAX_FACTS:
            self.facts.append((tag, receipts.Recipient(conn.user, conn.sid, self._clock())))
        else:
            self.dropped += 1

    def take(self) -> list[tuple[receipts.Tag, receipts.Recipient]]:
        """The facts noted since the last call."""
        facts, self.facts = self.facts, []
        return facts
