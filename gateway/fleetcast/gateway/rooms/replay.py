"""Replaying one connection's rooms from their history: every event once, in order, then live.

Used when a client resumes (``since`` in its connect ``auth``, for any of
its rooms) and when it subscribes to one room with ``since``. Holds go up
for every room first, before the rooms are joined, so no live event reaches
the client between the join and the replay; the histories are read in one
MULTI, merged by event (merging.py) and sent; then each room's hold lets go
of the live frames the replay did not already cover, and keeps dropping
those it covered until the first newer one (a frame published before the
read may reach the listener after it).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Final

import structlog

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms import history, merging
from fleetcast.gateway.rooms.delivery import Sender, client_offsets, make_frame
from fleetcast.gateway.rooms.registry import Connection, Hold
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol import events, keys, rooms
from fleetcast.protocol.wire import RoutedEvent

log = structlog.stdlib.get_logger(__name__)

#: Live frames one recovering room may hold while its history is read.
MAX_HELD: Final = 10_000


@dataclass(frozen=True, slots=True)
class Served:
    """What a served read sends (state snapshots), and the room offset it is as of."""

    frames: Sequence[Frame]
    top: str | None


def latest_positions(merged: Sequence[RoutedEvent], not_before: float) -> list[RoutedEvent]:
    """Each asset's last position in ``merged``, unless it is older than ``not_before``."""
    latest: dict[object, RoutedEvent] = {}
    for routed in merged:
        if routed.event.get("event_type") == events.POSITION_TYPE:
            data = routed.event.get("data")
            latest.pop(asset := data.get("asset_id") if isinstance(data, dict) else None, None)
            latest[asset] = routed
    fresh = []
    for routed in latest.values():
        at = _when(routed.event.get("occurred_at"))
        if at is None or at >= not_before:
            fresh.append(routed)
    return fresh


def _when(value: object) -> float | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value).timestamp()
    except ValueError:
        return None


class Replays:
    """Holds, reads, merges and replays the rooms one connection resumes."""

    def __init__(
        self,
        reader: history.StreamReader,
        sender: Sender,
        metrics: Metrics,
        *,
        position_max_age_s: float = keys.FLEET_ASSET_TTL_S,
    ) -> None:
        self._reader = reader
        self._sender = sender
        self._metrics = metrics
        self._position_max_age_s = position_max_age_s

    @staticmethod
    def hold(conn: Connection, room_names: Iterable[str]) -> dict[str, Hold]:
        """Hold the live frames of ``room_names`` from now on (call before joining them).

        From now on until the replay ends, events sent to the connection
        through its other rooms are noted, so the replay does not repeat them.
        """
        if conn.replay_ids is None:
            conn.replay_ids = set()
        conn.replays += 1
        holds = {}
        for name in room_names:
            hold = holds[name] = Hold()
            if conn.recovering is None:
                conn.recovering = {}
            conn.recovering[name] = hold
        return holds

    async def replay(
        self, conn: Connection, since: Mapping[str, str], holds: Mapping[str, Hold]
    ) -> dict[str, bool]:
        """Replay the rooms of ``since`` (room -> offset); whether each was complete."""
        try:
            recoveries = await history.read_many(self._reader, since)
        except Exception as exc:  # Redis away: the rooms are joined anyway, the gap reported
            log.warning("history read failed", error=repr(exc))
            recoveries = {name: history.Recovery((), complete=False) for name in since}
        except BaseException:
            for name, hold in holds.items():
                conn.end_recovery(name, hold)
            self._done(conn)
            raise
        joined = {name for name in since if name in conn.rooms}
        sent = conn.replay_ids if conn.replay_ids is not None else set()
        self._send(conn, {name: recoveries[name].entries for name in joined}, sent)
        results = {}
        for name in since:
            hold = holds[name]
            if name not in joined:  # left (or disconnected) while we read
                conn.end_recovery(name, hold)
                results[name] = False
                continue
            last = recoveries[name].last or history.parse_offset(since[name])
            self._release(conn, name, hold, last, sent)
            results[name] = recoveries[name].complete and not hold.overflowed
            self._metrics.recoveries.labels("complete" if results[name] else "gap").inc()
        self._done(conn)
        return results

    async def serve(
        self, conn: Connection, room_name: str, read: Callable[[], Awaitable[Served]]
    ) -> bool:
        """Send what ``read`` returns as of its offset, the room's live frames held meanwhile.

        False when the read failed (nothing sent; the held frames go on).
        """
        holds = self.hold(conn, [room_name])
        hold = holds[room_name]
        try:
            served = await read()
        except Exception as exc:  # Redis away: the client goes on with live events
            log.warning("state read failed", error=repr(exc))
            served = None
        except BaseException:
            conn.end_recovery(room_name, hold)
            self._done(conn)
            raise
        if room_name not in conn.rooms:
            conn.end_recovery(room_name, hold)
            self._done(conn)
            return False
        for frame in served.frames if served is not None else ():
            self._sender.push(conn, frame)
        top = served.top if served is not None and served.top else None
        last = history.parse_offset(top) if top else (0, 0)
        self._release(conn, room_name, hold, last, conn.replay_ids or set())
        self._done(conn)
        return served is not None

    @staticmethod
    def _done(conn: Connection) -> None:
        conn.replays -= 1
        if conn.replays <= 0:
            conn.replays, conn.replay_ids = 0, None

    def _send(
        self,
        conn: Connection,
        entries: Mapping[str, Sequence[history.Entry]],
        sent: set[str | None],
    ) -> None:
        """Everything missed but positions, in order; then each asset's latest position.

        After a long gap a unit needs its alerts and tasks first, and only
        where each asset is now: old positions are dropped, not replayed.
        """
        merged = [r for r in merging.merge(entries) if r.event.get("organization_id") == conn.org]
        for routed in merged:
            if routed.event.get("event_type") != events.POSITION_TYPE:
                self._push(conn, routed, sent)
        for routed in latest_positions(merged, time.time() - self._position_max_age_s):
            self._push(conn, routed, sent)

    def _push(self, conn: Connection, routed: RoutedEvent, sent: set[str | None]) -> None:
        event_id = routed.event.get("event_id")
        room = merging.first_room(routed, conn.rooms)
        if event_id in sent or room is None:
            return
        sent.add(event_id)
        offsets = client_offsets(routed, conn.org)
        client_room = rooms.client_name(room, conn.org)
        self._sender.push(
            conn, make_frame(routed.event, client_room, routed.offsets[room], offsets)
        )

    def _release(
        self, conn: Connection, name: str, hold: Hold, last: history.Offset, sent: set[str | None]
    ) -> None:
        """The replay of ``name`` is sent: let go of the held frames it did not cover."""
        held, hold.frames, hold.replayed = hold.frames, [], last
        newer = [f for f in held if not hold.covers(f.offset) and f.event_id not in sent]
        for frame in newer:
            self._sender.push(conn, frame)
        if newer:  # a room's frames come in offset order: none the replay sent can follow
            conn.end_recovery(name, hold)
