"""subscribe / unsubscribe requests, and resuming rooms with ``since`` (at connect or later).

Each request answers with an ack, never an exception: ``{"ok": true, "room":
...}`` or ``{"ok": false, "error": {"code", "message"}}``. Checks run from
the cheapest: rate, shape, room syntax (the org always comes from the token),
role policy, offset, room count.

A client that reconnects names every room it was in, with its last offset,
in the connect ``auth`` (``since: {"org": ..., "channel:ch-3": ...}``): those
rooms are held, joined and replayed together, so each missed event comes
once, in order, before live ones (rooms/replay.py). A malformed ``since`` is
refused (``invalid_offset``); a room the client may no longer join is named
in ``session.refused`` and not joined. ``subscribe`` with ``since`` resumes
one room the same way.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import structlog

from fleetcast.gateway.edge import policy
from fleetcast.gateway.edge.clients import Client
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms import history, state
from fleetcast.gateway.rooms.registry import Connection, Hold, Registry
from fleetcast.gateway.rooms.replay import Replays
from fleetcast.protocol import rooms

log = structlog.stdlib.get_logger(__name__)

Ack = dict[str, Any]


class StateSender(Protocol):
    """Sends the org's state snapshots to a connection (rooms/state.StateService)."""

    async def send(self, conn: Connection, kinds: frozenset[str]) -> dict[str, int]: ...


#: What a room's state is made of: ``subscribe`` with ``state: true`` on it sends these.
ROOM_STATE: dict[rooms.RoomKind, frozenset[str]] = {
    rooms.RoomKind.ORG: frozenset({state.INCIDENTS, state.ALERTS}),
    rooms.RoomKind.USER: frozenset({state.TASKS}),
}


def state_after_gaps(recovered: dict[str, bool], user: str) -> frozenset[str]:
    """The snapshots a resume's gaps call for: the client cannot rebuild those rooms otherwise."""
    kinds: set[str] = set()
    if recovered.get("org") is False:
        kinds |= ROOM_STATE[rooms.RoomKind.ORG]
    if recovered.get(f"user:{user}") is False:
        kinds |= ROOM_STATE[rooms.RoomKind.USER]
    return frozenset(kinds)


class FleetJoin(Protocol):
    """What joining the fleet room adds (fleet.FleetRoom: the snapshot, sent first)."""

    def joined(self, conn: Connection, room: rooms.Room) -> Awaitable[dict[str, Any]]: ...


class Refused(Exception):
    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def error(self) -> dict[str, Any]:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return error

    def ack(self, room: object) -> Ack:
        return {"ok": False, "room": room if isinstance(room, str) else None, "error": self.error()}


@dataclass(slots=True)
class Resume:
    """The rooms a connecting client resumes: checked, not yet joined."""

    #: Full room name -> the offset to replay after.
    since: dict[str, str] = field(default_factory=dict)
    #: Client room name -> full room, for the answers in ``session``.
    names: dict[str, str] = field(default_factory=dict)
    #: Fleet rooms asked for (their snapshot is the recovery).
    fleet: list[rooms.Room] = field(default_factory=list)
    #: Client room name -> why it is not joined.
    refused: dict[str, dict[str, Any]] = field(default_factory=dict)
    holds: dict[str, Hold] = field(default_factory=dict)


class Subscriptions:
    def __init__(
        self,
        registry: Registry,
        role_policy: policy.Policy,
        replays: Replays,
        metrics: Metrics,
        *,
        max_rooms: int,
        on_change: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        fleet: FleetJoin | None = None,
        state: StateSender | None = None,
    ) -> None:
        self._fleet = fleet
        self._state = state
        self._registry = registry
        self._policy = role_policy
        self._replays = replays
        self._metrics = metrics
        self._max_rooms = max_rooms
        self._on_change = on_change
        self._clock = clock

    # --- requests -------------------------------------------------------------------

    async def subscribe(self, client: Client, data: object) -> Ack:
        conn = client.conn
        requested = data.get("room") if isinstance(data, dict) else None
        try:
            room, since = self._check_subscribe(client, data)
        except Refused as refused:
            self._metrics.subscribes.labels(refused.code).inc()
            return refused.ack(requested)
        self._metrics.subscribes.labels("ok").inc()
        if self._fleet is not None and room.kind is rooms.RoomKind.FLEET:
            return await self._join_fleet(conn, room, since)
        ack: Ack = {"ok": True, "room": room.client_name}
        if since is None:
            self._join(conn, room.name)
        else:
            holds = self._replays.hold(conn, [room.name])
            self._join(conn, room.name)
            done = await self._replays.replay(conn, {room.name: since}, holds)
            ack["recovered"] = done[room.name]
        wanted = ROOM_STATE.get(room.kind, frozenset())
        if isinstance(data, dict) and data.get("state") is True and wanted:
            ack["state"] = await self.send_state(conn, wanted)
        return ack

    async def send_state(self, conn: Connection, kinds: frozenset[str]) -> dict[str, int]:
        """The org's state snapshots for ``conn`` (incidents and alerts, its own tasks)."""
        return await self._state.send(conn, kinds) if self._state is not None and kinds else {}

    def unsubscribe(self, client: Client, data: object) -> Ack:
        conn = client.conn
        requested = data.get("room") if isinstance(data, dict) else None
        try:
            self._check_rate(client)
            room = _parse(conn, requested)
        except Refused as refused:
            return refused.ack(requested)
        if conn.recovering:
            conn.recovering.pop(room.name, None)
        if self._registry.leave(conn, room.name):
            self._on_change(conn.sid)
        return {"ok": True, "room": room.client_name}

    async def _join_fleet(self, conn: Connection, room: rooms.Room, since: str | None) -> Ack:
        """The fleet room has no history: its snapshot is the recovery, ``since`` or not."""
        self._join(conn, room.name)
        extra = await self._fleet.joined(conn, room) if self._fleet is not None else {}
        ack: Ack = {"ok": True, "room": room.client_name, **extra}
        if since is not None:
            ack["recovered"] = bool(extra.get("snapshot", {}).get("complete"))
        return ack

    def _join(self, conn: Connection, name: str) -> None:
        if self._registry.join(conn, name):
            self._on_change(conn.sid)

    # --- checks ---------------------------------------------------------------------

    def _check_rate(self, client: Client) -> None:
        wait = client.requests.take(self._clock())
        if wait > 0:
            raise Refused("rate_limited", "too many subscribe requests", round(wait + 0.005, 2))

    def _check_subscribe(self, client: Client, data: object) -> tuple[rooms.Room, str | None]:
        conn = client.conn
        self._check_rate(client)
        if not isinstance(data, dict):
            raise Refused("invalid_room", 'expected {"room": "<kind>:<id>"}')
        room = self._allowed(client, data.get("room"))
        since = data.get("since")
        if since is not None and room.kind is not rooms.RoomKind.FLEET:
            _check_offset(since)
        if room.name not in conn.rooms and len(conn.rooms) >= self._max_rooms:
            raise Refused("too_many_rooms", f"at most {self._max_rooms} rooms per connection")
        return room, since

    def _allowed(self, client: Client, requested: object) -> rooms.Room:
        room = _parse(client.conn, requested)
        if not self._policy.allows(client.claims, room):
            raise Refused("forbidden", f"your roles do not allow room {room.client_name}")
        if room.name in client.withdrawn:
            raise Refused("forbidden", f"access to {room.client_name} was withdrawn")
        return room

    # --- resuming at connect --------------------------------------------------------------

    def plan_resume(self, client: Client, since: object) -> Resume:
        """Check what a connecting client resumes; raises :class:`Refused` for a bad ``since``."""
        plan = Resume()
        if since is None:
            return plan
        if not isinstance(since, dict):
            raise Refused("invalid_offset", 'since must be an object {"<room>": "<offset>"}')
        automatic = {room.name for room in policy.automatic_rooms(client.claims)}
        room_count = len(automatic)
        for requested, offset in since.items():
            try:
                room = self._allowed(client, requested)
            except Refused as refused:
                plan.refused[str(requested)[:64]] = refused.error()
                continue
            if room.kind is rooms.RoomKind.FLEET:
                plan.fleet.append(room)
                continue
            _check_offset(offset)
            if room.name not in automatic:
                room_count += 1
                if room_count > self._max_rooms:
                    plan.refused[room.client_name] = Refused(
                        "too_many_rooms", f"at most {self._max_rooms} rooms per connection"
                    ).error()
                    continue
            plan.since[room.name] = offset
            plan.names[room.client_name] = room.name
        return plan

    def hold(self, conn: Connection, plan: Resume) -> None:
        """Hold the rooms to resume, before anything is joined."""
        if plan.since:
            plan.holds = self._replays.hold(conn, plan.since)

    def join(self, conn: Connection, plan: Resume) -> None:
        """Join the resumed rooms besides the automatic ones (those the server joins)."""
        for name in plan.since:
            self._join(conn, name)
        for room in plan.fleet:
            self._join(conn, room.name)

    async def resume(self, conn: Connection, plan: Resume) -> dict[str, bool]:
        """Replay the resumed rooms; whether each was complete, by client room name."""
        for room in plan.fleet:
            if self._fleet is not None:
                await self._fleet.joined(conn, room)
        if not plan.since:
            return {}
        done = await self._replays.replay(conn, plan.since, plan.holds)
        return {client: done[name] for client, name in plan.names.items()}


def _check_offset(offset: object) -> None:
    try:
        history.check_offset(offset)
    except history.OffsetError as exc:
        raise Refused("invalid_offset", str(exc)) from None


def _parse(conn: Connection, requested: object) -> rooms.Room:
    try:
        return rooms.parse_client_room(requested, conn.org)
    except rooms.RoomError as exc:
        raise Refused(exc.code, exc.message) from None
