"""The local connections of this gateway and which rooms each is in.

This is the gateway's own room table (python-socketio's rooms are not used):
delivery reads it on every event, so membership is a dict per room keyed by
sid, holding the :class:`Connection` itself (no second lookup per recipient).
Pure in-memory state, no I/O.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Hashable, Iterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from fleetcast.gateway.edge.auth import Claims
from fleetcast.gateway.edge.limits import TokenBucket
from fleetcast.gateway.rooms import history
from fleetcast.gateway.transport.packets import Frame


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
    eio_sid: str
    claims: Claims
    connected_at: float
    subscribe_bucket: TokenBucket
    deadline: float  # when the token expires (exp + leeway), wall clock
    rooms: set[str] = field(default_factory=set)
    #: False until the Socket.IO CONNECT packet went out; frames wait until then.
    open: bool = False
    #: Frames not yet handed to Engine.IO; priority ones always go first.
    prio: deque[Frame] | None = None
    bulk: deque[Frame] | None = None
    #: Rooms being recovered: live frames wait here until history is sent.
    recovering: dict[str, Hold] | None = None
    #: Outcome of the recoveries asked at connect (auth ``since``), for ``session``.
    recovered: dict[str, bool] | None = None
    #: Why the server closed it (metrics label); None when the client left.
    close_reason: str | None = None
    #: Where its frames go (transport.py's Outlet), looked up once.
    outlet: Any = None

    @property
    def user(self) -> str:
        return self.claims.user

    @property
    def org(self) -> str:
        return self.claims.org

    def end_recovery(self, room_name: str, hold: Hold | None = None) -> None:
        """Stop holding or filtering ``room_name``'s live frames (only ``hold``, if given)."""
        if self.recovering is not None and (hold is None or self.recovering.get(room_name) is hold):
            self.recovering.pop(room_name, None)
            if not self.recovering:
                self.recovering = None

    def backlog(self) -> int:
        return (len(self.prio) if self.prio else 0) + (len(self.bulk) if self.bulk else 0)


class Registry:
    """Connections by sid, room members by room name, counts by org and user."""

    def __init__(self) -> None:
        self.connections: dict[str, Connection] = {}
        self.rooms: dict[str, dict[str, Connection]] = {}
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
        self.rooms.setdefault(name, {})[conn.sid] = conn
        return True

    def leave(self, conn: Connection, name: str) -> bool:
        if name not in conn.rooms:
            return False
        conn.rooms.discard(name)
        members = self.rooms.get(name)
        if members is not None:
            members.pop(conn.sid, None)
            if not members:
                del self.rooms[name]
        return True

    def members(self, name: str) -> dict[str, Connection]:
        return self.rooms.get(name, _EMPTY)

    def user_connections(self, org: str, user: str) -> int:
        return self._per_user.get((org, user), 0)

    def org_connections(self, org: str) -> int:
        return self._per_org.get(org, 0)

    def per_org(self) -> dict[str, int]:
        return dict(self._per_org)


_EMPTY: dict[str, Connection] = {}


K = TypeVar("K", bound=Hashable)


def _decrement(counter: Counter[K], key: K) -> None:
    counter[key] -= 1
    if counter[key] <= 0:
        del counter[key]
