"""Deliver routed events to the local rooms of this gateway.

:meth:`Delivery.deliver` is the entry point the Redis listener calls for each
event of a pub/sub message (and tests call directly). A connection gets each
event once, through the first of the event's target rooms (routing order) it
is in; the payload names that room and its offset. The payload is encoded
once per (event, room) and the same frame is handed to every recipient.
A position's fleet-room target goes to the fleet batcher instead (fleet.py:
one ``asset_positions`` frame per org per interval).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

import structlog

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.transport.packets import Frame, encode_event
from fleetcast.protocol import events
from fleetcast.protocol.wire import RoutedEvent

log = structlog.stdlib.get_logger(__name__)

#: Full names of fleet rooms start with this (``fleet:org:{org}``); their
#: positions go to the batcher, one batch per interval instead of one frame each.
FLEET_PREFIX = "fleet:"


class Sender(Protocol):
    """Takes a frame for one connection (the outbox; a faster writer later)."""

    def push(self, conn: Connection, frame: Frame) -> None: ...


class PositionBatcher(Protocol):
    """Takes the positions routed to an org's fleet room (fleet.FleetBatcher)."""

    def add(self, org: str, event: Mapping[str, Any]) -> None: ...


def client_room_name(room_name: str, org: str) -> str:
    """Full name to client name: ``channel:c:org:o`` -> ``channel:c``, ``org:o`` -> ``org``."""
    suffix = f":org:{org}"
    return room_name[: -len(suffix)] if room_name.endswith(suffix) else "org"


def belongs_to(room_name: str, org: str) -> bool:
    """True when a full room name is one of ``org``'s (ids never contain ``:``)."""
    return room_name == f"org:{org}" or room_name.endswith(f":org:{org}")


def make_frame(event: Mapping[str, Any], client_room: str, offset: str | None) -> Frame:
    """The payload a client receives: the envelope plus ``room`` and ``offset``."""
    payload = dict(event)
    payload["room"] = client_room
    if offset is not None:
        payload["offset"] = offset
    event_type = str(event.get("event_type"))
    return Frame(encode_event(event_type, payload), events.is_priority(event_type), offset)


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
        self.delivered = 0

    def deliver(self, org: str, routed: RoutedEvent) -> int:
        """Deliver one event of ``org``; returns how many connections got it."""
        seen: set[str] | None = set() if len(routed.rooms) > 1 else None
        fleet = self._fleet if routed.event.get("event_type") == events.POSITION_TYPE else None
        count = 0
        for room_name in routed.rooms:
            members = self._registry.members(room_name)
            if not members:
                continue
            if not belongs_to(room_name, org):
                log.warning("room of another org dropped", org=org, room=room_name)
                self._metrics.wire_errors.inc()
                continue
            if fleet is not None and room_name.startswith(FLEET_PREFIX):
                fleet.add(org, routed.event)
                continue
            frame: Frame | None = None
            for sid, conn in members.items():
                if seen is not None:
                    if sid in seen:
                        continue
                    seen.add(sid)
                if frame is None:
                    client_room = client_room_name(room_name, org)
                    frame = make_frame(routed.event, client_room, routed.offsets.get(room_name))
                self._hand_over(conn, room_name, frame)
                count += 1
        if count:
            self._account(routed.event, count)
        return count

    def _hand_over(self, conn: Connection, room_name: str, frame: Frame) -> None:
        hold = conn.recovering.get(room_name) if conn.recovering else None
        if hold is None:
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
            self._metrics.latency.observe(max(0.0, time.time() - occurred))


def _timestamp(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None
