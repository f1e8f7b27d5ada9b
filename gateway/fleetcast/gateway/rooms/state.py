"""The org's current state for a client: open incidents, active alerts, and its own open tasks.

A console opened mid-shift would otherwise show only what changes from now
on. The consumer keeps the state in Redis (consumer/state.py), updated in
the same script that appends each event to its rooms' histories, so one
read of a table and of its room's stream end (one MULTI) is a snapshot *as
of that offset*. It is served like a history replay: the room's live frames
are held from before the read, the snapshot goes first, then the held frames
newer than its offset; nothing between the two is missed or sent twice.

- ``incidents_snapshot`` and ``alerts_snapshot`` come through the ``org``
  room, ``tasks_snapshot`` through the client's own user room;
- a client asks for them at connect (``auth.state``) or later (``subscribe``
  with ``state: true`` for its org or user room); one whose resume found a
  gap in those rooms gets them without asking;
- reads are coalesced per org (and per user) and each snapshot is encoded
  once for everyone who asked at the same time.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson
import structlog

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.coalesce import Coalescer
from fleetcast.gateway.rooms.registry import Connection
from fleetcast.gateway.rooms.replay import Replays, Served
from fleetcast.gateway.transport.packets import Frame, encode_event
from fleetcast.protocol import rooms

log = structlog.stdlib.get_logger(__name__)

INCIDENTS, ALERTS, TASKS = "incidents", "alerts", "tasks"
KINDS: Final = frozenset({INCIDENTS, ALERTS, TASKS})
ORG_KINDS: Final = (INCIDENTS, ALERTS)
EVENT_TYPES: Final = {kind: f"{kind}_snapshot" for kind in KINDS}

Spawn = Callable[[Coroutine[Any, Any, Any], str], object]


@dataclass(frozen=True, slots=True)
class RawState:
    """One read: the room's stream end (None: no stream) and each table's entries, undecoded."""

    top: str | None
    tables: Mapping[str, Mapping[str, bytes]]


class StateSource(Protocol):
    """The state tables in Redis (redis/state.py), each read with its room's stream end."""

    async def org_state(self, org: str) -> RawState: ...

    async def user_tasks(self, org: str, user: str) -> RawState: ...


@dataclass(frozen=True, slots=True)
class View:
    """A read, decoded and encoded once: the frame of each table, and the offset it is as of."""

    frames: Mapping[str, Frame]
    top: str | None
    counts: Mapping[str, int]


def kinds_asked(value: object) -> frozenset[str]:
    """``true`` (everything), a list of kinds, or nothing; anything else asks for nothing."""
    if value is True:
        return KINDS
    if isinstance(value, list):
        return frozenset(kind for kind in value if kind in KINDS)
    return frozenset()


def decode(org: str, raw: RawState, kinds: Iterable[str], max_items: int) -> View:
    """Frames of the tables of ``raw`` (at most ``max_items`` records each; sorted by id)."""
    taken_at = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    frames, counts = {}, {}
    for kind in kinds:
        entries = raw.tables.get(kind, {})
        records = []
        for item in sorted(entries)[:max_items]:
            record = _record(entries[item])
            if record is not None:
                records.append(record)
        counts[kind] = len(records)
        payload = {
            "event_type": EVENT_TYPES[kind],
            "organization_id": org,
            "taken_at": taken_at,
            "offset": raw.top,
            "data": {kind: records, "complete": len(entries) <= max_items},
        }
        frames[kind] = payload
    return View({kind: _frame(kind, payload) for kind, payload in frames.items()}, raw.top, counts)


def _frame(kind: str, payload: dict[str, Any]) -> Frame:
    return Frame(encode_event(EVENT_TYPES[kind], payload), priority=True)


def _record(blob: bytes) -> dict[str, Any] | None:
    try:
        record = orjson.loads(blob)
    except orjson.JSONDecodeError:
        return None
    return record if isinstance(record, dict) else None


class StateService:
    """Sends a connection the snapshots it asked for, each consistent with its room's stream."""

    def __init__(
        self,
        source: StateSource,
        replays: Replays,
        metrics: Metrics,
        *,
        spawn: Spawn,
        max_items: int,
    ) -> None:
        self._source = source
        self._replays = replays
        self._metrics = metrics
        self._max = max_items
        self._orgs: Coalescer[str, View] = Coalescer(self._read_org, spawn, "org-state")
        self._users: Coalescer[tuple[str, str], View] = Coalescer(
            self._read_user, spawn, "user-state"
        )

    async def send(self, conn: Connection, kinds: frozenset[str]) -> dict[str, int]:
        """Send ``kinds``' snapshots to ``conn``; how many records each held (-1: unreadable)."""
        sent: dict[str, int] = {}
        started = time.monotonic()
        org_kinds = [kind for kind in ORG_KINDS if kind in kinds]
        if org_kinds:
            room = rooms.org_room(conn.org).name
            sent |= await self._serve(conn, room, org_kinds, lambda: self._orgs.get(conn.org))
        if TASKS in kinds:
            room, key = rooms.user_room(conn.user, conn.org).name, (conn.org, conn.user)
            sent |= await self._serve(conn, room, [TASKS], lambda: self._users.get(key))
        if sent:
            self._metrics.state_snapshots.inc(len(sent))
            self._metrics.state_snapshot_seconds.observe(time.monotonic() - started)
        return sent

    async def _serve(
        self,
        conn: Connection,
        room: str,
        kinds: list[str],
        read: Callable[[], Awaitable[View]],
    ) -> dict[str, int]:
        got: list[View] = []

        async def served() -> Served:
            view = await read()
            got.append(view)
            return Served([view.frames[kind] for kind in kinds], view.top)

        await self._replays.serve(conn, room, served)
        return {kind: got[0].counts.get(kind, 0) if got else -1 for kind in kinds}

    async def _read_org(self, org: str) -> View:
        return decode(org, await self._source.org_state(org), ORG_KINDS, self._max)

    async def _read_user(self, key: tuple[str, str]) -> View:
        org, user = key
        return decode(org, await self._source.user_tasks(org, user), (TASKS,), self._max)
