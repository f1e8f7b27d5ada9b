"""Deliver routed events to the local rooms of this gateway.

:meth:`Delivery.deliver` is the entry point the Redis listener calls for each
event of a pub/sub message (and tests call directly). A connection gets each
event once, through the first of the event's target rooms (routing order) it
is in; the payload names that room and its offset, and (for an event kept in
several rooms' histories) ``offsets``: its offset in each of them, so a client
knows how far it has got in every room even for events that came through
another one. The payload is encoded once per (event, room) and the same frame
is handed to every recipient. A position's fleet-room target goes to the
fleet batcher instead (fleet.py: one ``asset_positions`` frame per org per
interval).

Each delivered event moves its rooms' cursors (registry.LocalRoom), which is
where a gap recovery starts. While an org is *paused* (a recovery is
replaying its history) its live events wait here, in order, and the recovery
releases them after the replay (rooms/recovery.py).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Protocol

import structlog

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.transport.packets import Frame, encode_event
from fleetcast.protocol import events, receipts, rooms
from fleetcast.protocol.wire import RoutedEvent

log = structlog.stdlib.get_logger(__name__)

#: Live events one paused org may hold while its history is replayed.
MAX_PAUSED: Final = 50_000


class Sender(Protocol):
    """Takes a frame for one connection (the outbox)."""

    def push(self, conn: Connection, frame: Frame) -> None: ...


class PositionBatcher(Protocol):
    """Takes the positions routed to an org's fleet room (fleet.FleetBatcher)."""

    def add(self, org: str, event: Mapping[str, Any]) -> None: ...


def make_frame(
    event: Mapping[str, Any],
    client_room: str,
    offset: str | None,
    offsets: Mapping[str, str] | None = None,
) -> Frame:
    """The payload a client receives: the envelope plus ``room``, ``offset`` and ``offsets``."""
    payload = dict(event)
    payload["room"] = client_room
    if offset is not None:
        payload["offset"] = offset
    if offsets:
        payload["offsets"] = offsets
    event_type = str(event.get("event_type"))
    event_id = event.get("event_id")
    priority = events.is_priority(event_type)
    return Frame(
        encode_event(event_type, payload),
        priority,
        offset,
        event_id=event_id if isinstance(event_id, str) else None,
        tag=receipts.tag_of(event) if priority else None,
    )


def client_offsets(routed: RoutedEvent, org: str) -> dict[str, str] | None:
    """The event's offset in each of its history rooms, by client room name.

    None for an event kept in one history only: ``room`` and ``offset`` say it all.
    """
    if len(routed.offsets) < 2:
        return None
    return {rooms.client_name(name, org): offset for name, offset in routed.offsets.items()}


class Paused:
    """Live events of one org held while its history is replayed (bounded, in order)."""

    __slots__ = ("events", "overflowed")

    def __init__(self) -> None:
        self.events: list[RoutedEvent] = []
        self.overflowed = False

    def hold(self, routed: RoutedEvent) -> None:
        if len(self.events) < MAX_PAUSED:
            self.events.append(routed)
        else:
            self.overflowed = True


class Delivery:
    """Fans routed events out to the connections of the local rooms."""

    def __init__(
        self,
        registry: Registry,
        sender: Sender,
        metrics: Metrics,
        *,
        max_held: int,
        fleet: PositionBatcher | None = None,
    ) -> None:
        self._registry = registry
        self._sender = sender
        self._metrics = metrics
        self._max_held = max_held
        self._fleet = fleet
        self._paused: dict[str, Paused] = {}
        self.delivered = 0
        #: The latency histogram's two children, bound once (no label lookup per event).
        self._latency = {
            True: metrics.latency.labels("priority"),
            False: metrics.latency.labels("position"),
        }

    # --- the live path --------------------------------------------------------------

    def deliver(self, org: str, routed: RoutedEvent) -> int:
        """Deliver one live event of ``org``; returns how many connections got it."""
        if self._paused:
            paused = self._paused.get(org)
            if paused is not None:
                paused.hold(routed)
                return 0
        return self.deliver_now(org, routed)

    def deliver_now(self, org: str, routed: RoutedEvent) -> int:
        """Deliver ``routed`` whether or not its org is paused (a recovery's replay)."""
        seen: set[str] | None = set() if len(routed.rooms) > 1 else None
        fleet = self._fleet if routed.event.get("event_type") == events.POSITION_TYPE else None
        offsets: dict[str, str] | None = None
        count = 0
        for room_name in routed.rooms:
            local = self._registry.local(room_name)
            if local is None:
                continue
            if not rooms.belongs_to(room_name, org):
                log.warning("room of another org dropped", org=org, room=room_name)
                self._metrics.wire_errors.inc()
                continue
            offset = routed.offsets.get(room_name)
            if offset is not None:
                local.cursor = offset
            if fleet is not None and rooms.is_fleet(room_name):
                fleet.add(org, routed.event)
                continue
            frame: Frame | None = None
            for sid, conn in local.members.items():
                if seen is not None:
                    if sid in seen:
                        continue
                    seen.add(sid)
                if frame is None:
                    if offsets is None:
                        offsets = client_offsets(routed, org) or {}
                    client_room = rooms.client_name(room_name, org)
                    frame = make_frame(routed.event, client_room, offset, offsets)
                self._hand_over(conn, room_name, frame)
                count += 1
        if count:
            self._account(routed.event, count)
        return count

    def _hand_over(self, conn: Connection, room_name: str, frame: Frame) -> None:
        hold = conn.recovering.get(room_name) if conn.recovering else None
        if hold is None:
            if conn.replay_ids is not None:  # its replay must not send this again
                conn.replay_ids.add(frame.event_id)
            self._sender.push(conn, frame)
        elif hold.replayed is not None:  # replay done: drop what it sent, then let go
            if not hold.covers(frame.offset):
                conn.end_recovery(room_name, hold)
                self._sender.push(conn, frame)
        elif len(hold.frames) < self._max_held:
            hold.frames.append(frame)
        else:  # cannot hold more: the recovery will report recovered=false
            hold.overflowed = True

    def _account(self, event: Mapping[str, Any], count: int) -> None:
        self.delivered += count
        self._metrics.deliveries.inc(count)
        self._metrics.events.inc()
        occurred = _timestamp(event.get("occurred_at"))
        if occurred is not None:
            priority = events.is_priority(str(event.get("event_type")))
            self._latency[priority].observe(max(0.0, time.time() - occurred))

    # --- pausing an org for a gap recovery ----------------------------------------------

    def pause(self, org: str) -> None:
        """Hold ``org``'s live events from now on (until :meth:`resume`)."""
        self._paused.setdefault(org, Paused())

    def resume(self, org: str) -> Paused:
        """Stop holding ``org``'s live events; returns those held, for the caller to deliver."""
        return self._paused.pop(org, None) or Paused()


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
