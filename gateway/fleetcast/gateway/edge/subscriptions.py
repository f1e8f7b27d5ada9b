"""subscribe / unsubscribe requests, and recovery with ``since``.

Each request answers with an ack, never an exception: ``{"ok": true, "room":
...}`` or ``{"ok": false, "error": {"code", "message"}}``. Checks run from
the cheapest: rate, shape, room syntax (the org always comes from the token),
role policy, offset, room count.

Recovery joins the room at once but holds its live frames, replays the
history after ``since``, then releases the held frames that history did not
already cover (by offset), and keeps dropping live frames the history covered
until the first newer one (a frame published before the history read may
reach the listener after it), so the client sees every event once and in order.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, NamedTuple, Protocol

import structlog

from fleetcast.gateway.edge import policy
from fleetcast.gateway.edge.clients import Client
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms import history
from fleetcast.gateway.rooms.delivery import Sender, make_frame
from fleetcast.gateway.rooms.registry import Connection, Hold, Registry
from fleetcast.protocol import rooms

log = structlog.stdlib.get_logger(__name__)

Ack = dict[str, Any]


class Planned(NamedTuple):
    """A recovery asked at connect: the room, its ``since`` (None: unreadable), its hold."""

    room: rooms.Room
    since: str | None
    hold: Hold | None


#: Live frames one recovering room may hold while its history is read.
MAX_HELD: Final = 10_000


class FleetJoin(Protocol):
    """What joining the fleet room adds (fleet.FleetRoom: the snapshot, sent first)."""

    def joined(self, conn: Connection, room: rooms.Room) -> Awaitable[dict[str, Any]]: ...


class Refused(Exception):
    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.retry_after = retry_after

    def ack(self, room: object) -> Ack:
        error: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.retry_after is not None:
            error["retry_after"] = self.retry_after
        return {"ok": False, "room": room if isinstance(room, str) else None, "error": error}


class Subscriptions:
    def __init__(
        self,
        registry: Registry,
        role_policy: policy.Policy,
        reader: history.StreamReader,
        sender: Sender,
        metrics: Metrics,
        *,
        max_rooms: int,
        on_change: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
        fleet: FleetJoin | None = None,
    ) -> None:
        self._fleet = fleet
        self._registry = registry
        self._policy = role_policy
        self._reader = reader
        self._sender = sender
        self._metrics = metrics
        self._max_rooms = max_rooms
        self._on_change = on_change
        self._clock = clock

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
        if since is None:
            if self._registry.join(conn, room.name):
                self._on_change(conn.sid)
            return {"ok": True, "room": room.client_name}
        recovered = await self._recover(conn, room, since)
        self._metrics.recoveries.labels("complete" if recovered else "gap").inc()
        return {"ok": True, "room": room.client_name, "recovered": recovered}

    async def _join_fleet(self, conn: Connection, room: rooms.Room, since: str | None) -> Ack:
        """The fleet room has no history: its snapshot is the recovery, ``since`` or not."""
        if self._registry.join(conn, room.name):
            self._on_change(conn.sid)
        extra = await self._fleet.joined(conn, room) if self._fleet is not None else {}
        ack: Ack = {"ok": True, "room": room.client_name, **extra}
        if since is not None:
            ack["recovered"] = bool(extra.get("snapshot", {}).get("complete"))
        return ack

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

    def _check_rate(self, client: Client) -> None:
        wait = client.requests.take(self._clock())
        if wait > 0:
            raise Refused("rate_limited", "too many subscribe requests", round(wait + 0.005, 2))

    def _check_subscribe(self, client: Client, data: object) -> tuple[rooms.Room, str | None]:
        conn = client.conn
        self._check_rate(client)
        if not isinstance(data, dict):
            raise Refused("invalid_room", 'expected {"room": "<kind>:<id>"}')
        room = _parse(conn, data.get("room"))
        if not self._policy.allows(client.claims, room):
            raise Refused("forbidden", f"your roles do not allow room {room.client_name}")
        since = data.get("since")
        if since is not None:
            try:
                history.parse_offset(since)
            except history.OffsetError as exc:
                raise Refused("invalid_offset", str(exc)) from None
        if room.name not in conn.rooms and len(conn.rooms) >= self._max_rooms:
            raise Refused("too_many_rooms", f"at most {self._max_rooms} rooms per connection")
        return room, since

    def hold_at_connect(self, client: Client, since: object) -> list[Planned]:
        """Hold the automatic rooms to recover (auth ``since`` by room), before they are joined.

        The org and user rooms are joined at connect, before the client could
        subscribe with ``since``. Their holds go up first, all of them, so no
        live event reaches the client between the join and the replay (it
        would come again in the replay). :meth:`recover_at_connect` then reads
        and replays; an offset that does not parse is reported as not recovered.
        """
        if not isinstance(since, dict):
            return []
        conn, planned = client.conn, []
        for room in policy.automatic_rooms(client.claims):
            offset = since.get(room.client_name)
            if offset is None:
                continue
            try:
                history.parse_offset(offset)
            except history.OffsetError:
                planned.append(Planned(room, None, None))
                continue
            planned.append(Planned(room, offset, self._hold(conn, room)))
        return planned

    async def recover_at_connect(self, conn: Connection, planned: list[Planned]) -> dict[str, bool]:
        """Read and replay what :meth:`hold_at_connect` held; recovered or not, by room."""
        results: dict[str, bool] = {}
        for room, offset, hold in planned:
            if offset is None or hold is None:
                results[room.client_name] = False
                continue
            results[room.client_name] = await self._read_and_replay(conn, room, offset, hold)
            self._metrics.recoveries.labels(
                "complete" if results[room.client_name] else "gap"
            ).inc()
        return results

    @staticmethod
    def _hold(conn: Connection, room: rooms.Room) -> Hold:
        hold = Hold()
        if conn.recovering is None:
            conn.recovering = {}
        conn.recovering[room.name] = hold
        return hold

    async def _recover(self, conn: Connection, room: rooms.Room, since: str) -> bool:
        hold = self._hold(conn, room)
        if self._registry.join(conn, room.name):
            self._on_change(conn.sid)
        return await self._read_and_replay(conn, room, since, hold)

    async def _read_and_replay(
        self, conn: Connection, room: rooms.Room, since: str, hold: Hold
    ) -> bool:
        try:
            recovery = await history.read_since(self._reader, room.name, since)
        except Exception as exc:  # Redis away: join anyway, report the gap
            log.warning("history read failed", error=repr(exc))
            recovery = history.Recovery((), complete=False)
        except BaseException:
            conn.end_recovery(room.name, hold)
            raise
        if room.name not in conn.rooms:  # left (or disconnected) while we read
            conn.end_recovery(room.name, hold)
            return False
        self._replay(conn, room, recovery, hold, since)
        return recovery.complete and not hold.overflowed

    def _replay(
        self, conn: Connection, room: rooms.Room, recovery: history.Recovery, hold: Hold, since: str
    ) -> None:
        for offset, envelope in recovery.entries:
            if envelope.get("organization_id") == conn.org:
                self._sender.push(conn, make_frame(envelope, room.client_name, offset))
        last = recovery.last or history.parse_offset(since)
        held, hold.frames, hold.replayed = hold.frames, [], last
        newer = [frame for frame in held if not hold.covers(frame.offset)]
        for frame in newer:
            self._sender.push(conn, frame)
        if newer:  # a room's frames come in offset order: none the replay sent can follow
            conn.end_recovery(room.name, hold)


def _parse(conn: Connection, requested: object) -> rooms.Room:
    try:
        return rooms.parse_client_room(requested, conn.org)
    except rooms.RoomError as exc:
        raise Refused(exc.code, exc.message) from None
