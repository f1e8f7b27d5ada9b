"""The local connections of this gateway and which rooms each is in.

This is the gateway's own room table (python-socketio's rooms are not used):
delivery reads it on every event, so membership is a dict per room keyed by
sid, holding the :class:`Connection` itself (no second lookup per recipient).
A room that has members also keeps its *cursor*: the offset of the last
event delivered to it, from which a gap in the pub/sub stream is recovered
(rooms/recovery.py). Pure in-memory state, no I/O.

A connection here is what the room table needs to know about it: where it
is, what it is still owed, and whether it is being recovered. Its token and
request budget belong to the edge (edge/clients.py), and its socket to the
transport; neither is kept here.
"""

from __future__ import annotations

import time
from collections import Counter, deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from fleetcast.gateway.rooms import history
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol import receipts, rooms


@dataclass(slots=True, eq=False)
class Hold:
    """Live frames of a room held back while its history is being replayed.

    Once the history is sent, the hold stays as a filter until the first live
    frame newer than the replay: a frame published before the history was read
    can still be on its way through the pub/sub connection (another socket,
    read in its own time), and the replay already sent it.
    """

    frames: list[Frame] = field(default_factory=list)
    #: More arrived than a hold keeps: the recovery cannot be complete.
    overflowed: bool = False
    #: The last offset the replay sent (or the ``since`` it started from), once done.
    replayed: history.Offset | None = None

    def covers(self, offset: str | None) -> bool:
        """True when the replay already sent the live frame at ``offset``."""
        if self.replayed is None or offset is None:
            return False
        try:
            return history.parse_offset(offset) <= self.replayed
        except history.OffsetError:
            return False


@dataclass(slots=True, eq=False)
class Connection:
    """One client connection (one Socket.IO sid on the default namespace)."""

    sid: str
    #: Its Engine.IO session: the transport's address for it.
    eio_sid: str
    org: str
    user: str
    connected_at: float
    rooms: set[str] = field(default_factory=set)
    #: False until the Socket.IO CONNECT packet went out; frames wait until then.
    open: bool = False
    #: Frames not yet handed to Engine.IO; priority ones always go first.
    prio: deque[Frame] | None = None
    bulk: deque[Frame] | None = None
    #: Rooms being recovered: live frames wait here until history is sent.
    recovering: dict[str, Hold] | None = None
    #: While a replay of its rooms runs: events sent to it meanwhile (by any path),
    #: so the replay and the frames it releases never send one twice.
    replay_ids: set[str | None] | None = None
    #: Replays running for it (a resume at connect, subscribes with since).
    replays: int = 0
    #: Why the server closed it (metrics label); None when the client left.
    close_reason: str | None = None
    #: Receipted events really written to it, by delivery id (the newest
    #: rooms/receipting.MAX_DELIVERIES): the only ones it may send receipts for.
    deliveries: dict[str, receipts.Tag] | None = None

    def end_recovery(self, room_name: str, hold: Hold | None = None) -> None:
        """Stop holding or filtering ``room_name``'s live frames (only ``hold``, if given)."""
        if self.recovering is not None and (hold is None or self.recovering.get(room_name) is hold):
            self.recovering.pop(room_name, None)
            if not self.recovering:
                self.recovering = None

    def backlog(self) -> int:
        return (len(self.prio) if self.prio else 0) + (len(self.bulk) if self.bulk else 0)


@dataclass(slots=True, eq=False)
class LocalRoom:
    """A room with local members: who they are, and how far delivery has got."""

    members: dict[str, Connection] = field(default_factory=dict)
    #: Offset of the last event delivered to the room (its history stream id).
    cursor: str | None = None
    #: Wall-clock milliseconds when the room got its first local member.
    opened_ms: int = 0


class Registry:
    """Connections by sid, rooms by name, counts by org and user."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        self.rooms: dict[str, LocalRoom] = {}
        self._per_user: Counter[tuple[str, str]] = Counter()
        self._per_org: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self.connections)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self.connections.values()))

    def get(self, sid: str) -> Connection | None:
        return self.connections.get(sid)

    def add(self, conn: Connection) -> None:
        self.connections[conn.sid] = conn
        self._per_user[(conn.org, conn.user)] += 1
        self._per_org[conn.org] += 1

    def remove(self, sid: str) -> Connection | None:
        """Forget a connection and take it out of every room."""
        conn = self.connections.pop(sid, None)
        if conn is None:
            return None
        for name in list(conn.rooms):
            self.leave(conn, name)
        _decrement(self._per_user, (conn.org, conn.user))
        _decrement(self._per_org, conn.org)
        return conn

    def join(self, conn: Connection, name: str) -> bool:
        """Put ``conn`` in room ``name``; False if it already was."""
        if name in conn.rooms:
            return False
        conn.rooms.add(name)
        local = self.rooms.get(name)
        if local is None:
            local = self.rooms[name] = LocalRoom(opened_ms=int(time.time() * 1000))
        local.members[conn.sid] = conn
        return True

    def leave(self, conn: Connection, name: str) -> bool:
        if name not in conn.rooms:
            return False
        conn.rooms.discard(name)
        local = self.rooms.get(name)
        if local is not None:
            local.members.pop(conn.sid, None)
            if not local.members:
                del self.rooms[name]
        return True

    def members(self, name: str) -> dict[str, Connection]:
        local = self.rooms.get(name)
        return local.members if local is not None else _EMPTY

    def local(self, name: str) -> LocalRoom | None:
        return self.rooms.get(name)

    def rooms_of(self, org: str) -> dict[str, LocalRoom]:
        """The rooms of ``org`` that have local members (a scan: for recoveries, not per event)."""
        return {name: local for name, local in self.rooms.items() if rooms.belongs_to(name, org)}

    def user_connections(self, org: str, user: str) -> int:
        return self._per_user.get((org, user), 0)

    def per_org(self) -> dict[str, int]:
        return dict(self._per_org)


_EMPTY: dict[str, Connection] = {}


K = TypeVar("K", bound=Hashable)


def _decrement(counter: Counter[K], key: K) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
