"""Several rooms' histories as one sequence of events, each once, each room's order kept.

An event routed to several rooms is in each of their streams, under a
different id in each (ids are per stream). Replaying room after room would
send it once per room; merging by ``event_id`` sends it once, through the
first of its rooms a connection is in, as live delivery does.

The merged order must respect every room's own order. Offsets of different
streams are not comparable within a millisecond (each stream numbers its own
entries from 0), so the merge is topological: an event goes out once it is
at the head of every one of its rooms' remaining entries; among those ready,
the oldest offset first. Pure.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence
from typing import Any

from fleetcast.gateway.rooms import history
from fleetcast.protocol.wire import RoutedEvent

#: Room kinds in routing order (protocol/routing.py): a merged event's rooms follow it.
ROUTING_ORDER = ("channel", "incident", "asset", "user", "org", "fleet")


def merge(per_room: Mapping[str, Sequence[history.Entry]]) -> list[RoutedEvent]:
    """The events of ``per_room`` (room -> (offset, envelope) in order), merged."""
    queues = {room: deque(entries) for room, entries in per_room.items() if entries}
    where: dict[Any, dict[str, str]] = {}
    envelopes: dict[Any, Mapping[str, Any]] = {}
    for room, entries in per_room.items():
        for offset, envelope in entries:
            key = envelope.get("event_id")
            where.setdefault(key, {})[room] = offset
            envelopes.setdefault(key, envelope)
    merged: list[RoutedEvent] = []
    sent: set[Any] = set()
    while queues:
        key = _next(queues, where)
        sent.add(key)
        offsets = dict(sorted(where[key].items(), key=lambda item: _rank(item[0])))
        merged.append(RoutedEvent(tuple(offsets), offsets, envelopes[key]))
        for room in list(queues):
            queue = queues[room]
            while queue and queue[0][1].get("event_id") in sent:
                queue.popleft()
            if not queue:
                del queues[room]
    return merged


def _next(queues: Mapping[str, deque[history.Entry]], where: Mapping[Any, Any]) -> Any:
    """The event to send next: ready at every one of its rooms' heads, oldest first."""
    ready, oldest = None, None
    for queue in queues.values():
        offset, envelope = queue[0]
        key = envelope.get("event_id")
        position = history.parse_offset(offset)
        if oldest is None or position < oldest[0]:
            oldest = (position, key)
        at_heads = all(r in queues and queues[r][0][1].get("event_id") == key for r in where[key])
        if at_heads and (ready is None or position < ready[0]):
            ready = (position, key)
    # Rooms that disagree on order (never from one consumer) still make progress.
    chosen = ready or oldest
    assert chosen is not None
    return chosen[1]


def _rank(room_name: str) -> int:
    kind = room_name.partition(":")[0]
    return ROUTING_ORDER.index(kind) if kind in ROUTING_ORDER else len(ROUTING_ORDER)


def first_room(routed: RoutedEvent, joined: set[str]) -> str | None:
    """The first of the event's rooms a connection is in."""
    return next((room for room in routed.rooms if room in joined), None)
