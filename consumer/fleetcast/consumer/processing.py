"""Kafka records -> what to publish and what to dead-letter: pure, no I/O.

A poll's records become one :class:`Batch`: the routed events in partition
order (so order within a room holds), the dead letters with their reason, and
the offsets to commit once both have been accepted. Everything here is a
plain function of its inputs, so the whole decision is unit-tested.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

import orjson

from fleetcast.protocol import events, routing
from fleetcast.protocol.rooms import RoomKind

log = logging.getLogger(__name__)

#: Room kinds with no history stream: the fleet room's positions are served
#: from the snapshot, and its batches are rebuilt by each gateway.
NO_HISTORY_KINDS: Final = frozenset({RoomKind.FLEET})
#: Event types that update the fleet snapshot, and which hash they go to.
SNAPSHOT_KINDS: Final = {"asset_position_updated": "position", "asset_status_changed": "status"}


class Record(Protocol):
    """The part of an aiokafka ConsumerRecord the pipeline reads."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...


@dataclass(frozen=True, slots=True)
class Routed:
    """One valid event, ready for the publish script."""

    org: str
    event_id: str
    event_type: str
    #: The envelope as compact JSON: the history entry and the wire ``event``.
    envelope_json: bytes
    #: Full room names in routing order; ``history`` is the subset with a stream.
    rooms: tuple[str, ...]
    history: tuple[str, ...]
    #: "position" or "status" when the event updates the fleet snapshot.
    snapshot: str | None = None
    asset_id: str | None = None


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A record that cannot be delivered, and why (reason is in events.REASONS)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    reason: str
    message: str


@dataclass(slots=True)
class Batch:
    """Everything one poll produced, and the offsets its delivery allows to commit."""

    routed: list[Routed] = field(default_factory=list)
    dead: list[DeadLetter] = field(default_factory=list)
    #: (topic, partition) -> next offset to read (last offset + 1).
    offsets: dict[tuple[str, int], int] = field(default_factory=dict)
    consumed: Counter[str] = field(default_factory=Counter)
    #: Valid events that route to no room (nothing to deliver; counted only).
    unrouted: int = 0

    def __len__(self) -> int:
        return sum(self.consumed.values())


@dataclass(frozen=True, slots=True)
class Targets:
    """Where one event goes: full room names, and the subset keeping history."""

    rooms: tuple[str, ...]
    history: tuple[str, ...]


class Router:
    """:func:`fleetcast.protocol.routing.route` with a bounded memo.

    The ids that decide a route repeat all the time (a fleet's units report
    every few seconds), and building and validating Room objects is the
    costliest step per event, so each distinct route is computed once. The
    memo is simply emptied when full: cheap, bounded, and self-healing.
    """

    def __init__(self, table: routing.RoutingTable, max_entries: int = 100_000) -> None:
        self.table = table
        self._max_entries = max_entries
        self._memo: dict[tuple[object, ...], Targets | None] = {}

    def targets(self, envelope: events.Envelope) -> Targets | None:
        data = envelope.data
        key = (envelope.event_type, envelope.organization_id, *map(data.get, ROUTE_KEYS))
        if key in self._memo:  # room ids are validated strings (or None): hashable
            return self._memo[key]
        if len(self._memo) >= self._max_entries:
            self._memo.clear()
        found = self._memo[key] = self._compute(envelope)
        return found

    def _compute(self, envelope: events.Envelope) -> Targets | None:
        found = routing.route(envelope, self.table)
        if not found:
            return None
        return Targets(
            rooms=tuple(room.name for room in found),
            history=tuple(room.name for room in found if room.kind not in NO_HISTORY_KINDS),
        )


#: The data keys a route depends on (besides event type and org).
ROUTE_KEYS: Final = tuple(routing.DATA_KEY_KINDS)


def to_routed(envelope: events.Envelope, router: Router) -> Routed | None:
    """Route one envelope; None when it targets no room at all."""
    targets = router.targets(envelope)
    if targets is None:
        return None
    snapshot = SNAPSHOT_KINDS.get(envelope.event_type)
    asset_id = envelope.data.get("asset_id") if snapshot else None
    return Routed(
        org=envelope.organization_id,
        event_id=envelope.event_id,
        event_type=envelope.event_type,
        envelope_json=orjson.dumps(envelope.as_dict()),
        rooms=targets.rooms,
        history=targets.history,
        snapshot=snapshot if asset_id is not None else None,
        asset_id=asset_id,
    )


def dead_letter(record: Record, error: events.EnvelopeError) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        reason=error.reason,
        message=error.message,
    )


def prepare(
    records: Iterable[Record],
    router: Router,
    *,
    max_event_bytes: int = events.DEFAULT_MAX_EVENT_BYTES,
) -> Batch:
    """Decode, validate and route a poll's records, in order."""
    batch = Batch()
    for record in records:
        batch.consumed[record.topic] += 1
        batch.offsets[(record.topic, record.partition)] = record.offset + 1
        try:
            envelope = events.decode_envelope(record.value, max_bytes=max_event_bytes)
        except events.EnvelopeError as exc:
            batch.dead.append(dead_letter(record, exc))
            continue
        routed = to_routed(envelope, router)
        if routed is None:
            batch.unrouted += 1
        else:
            batch.routed.append(routed)
    return batch


def by_org(routed: Sequence[Routed]) -> dict[str, list[Routed]]:
    """Group events per org, keeping their order (one pub/sub message per org)."""
    groups: dict[str, list[Routed]] = {}
    for item in routed:
        groups.setdefault(item.org, []).append(item)
    return groups


def flatten(polled: Mapping[object, Sequence[Record]]) -> list[Record]:
    """aiokafka's getmany result (partition -> records) as one list.

    Order within a partition is kept, which is all Kafka promises; events of
    one org share a partition (the org is the key), so room order holds.
    """
    return [record for records in polled.values() for record in records]
