"""Kafka records -> what to publish and what to dead-letter: pure, no I/O.

A poll's records become one :class:`Batch`: the routed events in partition
order (so order within a room holds), the dead letters with their reason, and
the offsets to commit once both have been accepted. Everything here is a
plain function of its inputs, so the whole decision is unit-tested.

This is the consumer's hot loop (every record of every topic passes here, and
one process is sized for 50,000 events/s), so it is written for it:

- A record whose route was computed before takes a fast path: one JSON parse,
  a few type checks, and one dict lookup. The memo key holds every value the
  route depends on (type, org and the room ids of ``data``), and a key only
  enters the memo after :func:`events.validate_envelope` accepted those
  values, so a hit proves them valid without checking them again. What
  varies per event (``event_id``, ``occurred_at``) is checked on every record.
- Everything else (a new route, any malformed record) takes the slow path:
  the strict decoder, which gives the dead-letter reason.
- An envelope with exactly the five fields is kept as the bytes that came
  from Kafka (no re-encoding); one with extra fields is re-encoded without
  them.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple, Protocol

import orjson

from fleetcast.consumer import access, state
from fleetcast.protocol import control, events, routing
from fleetcast.protocol.rooms import RoomKind

log = logging.getLogger(__name__)
#: Bound once: called for every record on the fast path.
is_rfc3339: Final = events.is_rfc3339

#: Room kinds with no history stream: the fleet room's positions are served
#: from the snapshot, and its batches are rebuilt by each gateway.
NO_HISTORY_KINDS: Final = frozenset({RoomKind.FLEET})
#: Event types that update the fleet snapshot, and which hash they go to.
SNAPSHOT_KINDS: Final = {"asset_position_updated": "position", "asset_status_changed": "status"}
#: The data keys a route depends on (besides event type and org).
ROUTE_KEYS: Final = tuple(routing.DATA_KEY_KINDS)
#: Longest event_id / occurred_at accepted (as in events.validate_envelope).
MAX_TEXT_FIELD: Final = 256


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


class Route(NamedTuple):
    """Where every event of one (type, org, room ids) goes; shared by all of them.

    A tuple of strings: the collector untracks it after its first pass, so a
    memo of tens of thousands of routes costs full collections nothing.
    """

    event_type: str
    org: str
    #: Full room names in routing order; empty for an event that targets no room.
    rooms: tuple[str, ...]
    #: The subset of ``rooms`` that keeps a history stream.
    history: tuple[str, ...]
    #: "position" or "status" when the event updates the fleet snapshot.
    snapshot: str | None = None
    asset_id: str | None = None


@dataclass(slots=True)
class Routed:
    """One valid event, ready for the publish script, and the record it came from."""

    route: Route
    #: The envelope as JSON: the history entry and the wire ``event``.
    envelope_json: bytes
    topic: str
    partition: int
    offset: int
    #: What the event changes in its org's state (most events: nothing).
    state: tuple[state.Op, ...] = ()
    #: The consumer's span of this event (W3C traceparent) when it is traced
    #: (consumer/tracing.py sets it before encoding); None on the usual path.
    traceparent: str | None = None

    @property
    def org(self) -> str:
        return self.route.org

    @property
    def event_type(self) -> str:
        return self.route.event_type

    @property
    def rooms(self) -> tuple[str, ...]:
        return self.route.rooms

    @property
    def history(self) -> tuple[str, ...]:
        return self.route.history


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
    #: Control messages of the control topic (revocations, withdrawals), in order.
    controls: list[control.Control] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(self.consumed.values())


class Router:
    """Envelopes -> :class:`Route`, memoized by what a route depends on.

    The ids that decide a route repeat all the time (a fleet's units report
    every few seconds), so each distinct route is computed, validated and
    stored once. The memo is simply emptied when full: cheap, bounded, and
    self-healing.
    """

    def __init__(self, table: routing.RoutingTable, max_entries: int = 100_000) -> None:
        self.table = table
        self._max_entries = max_entries
        self._memo: dict[tuple[Any, ...], Route] = {}

    def known(self, doc: Any) -> Route | None:
        """The route of a well-formed five-field envelope met before, else None.

        None only means "take the slow path"; it says nothing about validity.
        """
        if type(doc) is not dict or len(doc) != 5:
            return None
        data = doc.get("data")
        event_id = doc.get("event_id")
        occurred_at = doc.get("occurred_at")
        if (
            type(data) is not dict
            or type(event_id) is not str
            or type(occurred_at) is not str
            or not 0 < len(event_id) <= MAX_TEXT_FIELD
            or not 0 < len(occurred_at) <= MAX_TEXT_FIELD
            or not is_rfc3339(occurred_at)  # varies per event: the memo cannot prove it
        ):
            return None
        get = data.get
        key = (
            doc.get("event_type"),
            doc.get("organization_id"),
            get("channel_id"),
            get("incident_id"),
            get("asset_id"),
            get("user_id"),
        )
        try:
            return self._memo.get(key)
        except TypeError:  # an unhashable value where an id belongs: invalid anyway
            return None

    def route(self, envelope: events.Envelope) -> Route:
        """The route of a validated envelope (computed once per distinct key)."""
        data = envelope.data
        key = (envelope.event_type, envelope.organization_id, *map(data.get, ROUTE_KEYS))
        found = self._memo.get(key)
        if found is None:
            if len(self._memo) >= self._max_entries:
                self._memo.clear()
            found = self._memo[key] = self._compute(envelope)
        return found

    def _compute(self, envelope: events.Envelope) -> Route:
        rooms = routing.route(envelope, self.table)
        snapshot = SNAPSHOT_KINDS.get(envelope.event_type)
        asset_id = envelope.data.get("asset_id") if snapshot else None
        return Route(
            event_type=envelope.event_type,
            org=envelope.organization_id,
            rooms=tuple(room.name for room in rooms),
            history=tuple(room.name for room in rooms if room.kind not in NO_HISTORY_KINDS),
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


#: No access rules (the default: tests and tools that only route).
_NO_RULES: Final[Mapping[str, access.Rule]] = {}


def prepare(
    polled: Mapping[Any, Sequence[Record]],
    router: Router,
    *,
    max_event_bytes: int = events.DEFAULT_MAX_EVENT_BYTES,
    into: Batch | None = None,
    control_topic: str | None = None,
    now: float = 0.0,
    access_rules: Mapping[str, access.Rule] = _NO_RULES,
    state_rules: state.Rules | None = None,
) -> Batch:
    """Decode, validate and route one poll (aiokafka's partition -> records), in order.

    Order within a partition is kept, which is all Kafka promises; events of
    one org share a partition (the org is the key), so room order holds.
    ``into`` extends a batch (a poll prepared in slices) instead of a new one.
    Records of ``control_topic`` are control messages, not events (``now``
    dates those that carry no time). An event that ``access_rules`` match
    adds its withdrawals to the batch's control messages. With ``state_rules``,
    an event that changes its org's state carries the changes (``Routed.state``).
    """
    batch = Batch() if into is None else into
    append = batch.routed.append
    loads, known = orjson.loads, router.known
    for records in polled.values():
        if not records:
            continue
        topic, partition = records[0].topic, records[0].partition
        batch.consumed[topic] += len(records)
        batch.offsets[(topic, partition)] = records[-1].offset + 1
        if topic == control_topic:
            for record in records:
                _prepare_control(record, now, batch)
            continue
        for record in records:
            value = record.value
            route = doc = None
            if value is not None and len(value) <= max_event_bytes:
                try:
                    doc = loads(value)
                    route = known(doc)
                except orjson.JSONDecodeError:
                    pass
            if route is None:
                envelope = _prepare_slowly(record, router, max_event_bytes, batch, state_rules)
                if envelope is not None and envelope.event_type in access_rules:
                    _withdraw(envelope.as_dict(), access_rules, now, batch)
                continue
            if route.rooms:
                item = Routed(route, value, topic, partition, record.offset)  # type: ignore[arg-type]
                if state_rules is not None and route.event_type in state.STATEFUL_TYPES:
                    data = doc["data"]  # type: ignore[index]  # known() checked it
                    item.state = state.ops(route.event_type, data, state_rules)
                append(item)
            else:
                batch.unrouted += 1
            if route.event_type in access_rules:
                _withdraw(doc, access_rules, now, batch)
    return batch


def _withdraw(doc: Any, rules: Mapping[str, access.Rule], now: float, batch: Batch) -> None:
    batch.controls += access.withdrawals(
        doc["event_type"], doc["organization_id"], doc["data"], rules, now
    )


def _prepare_control(record: Record, now: float, batch: Batch) -> None:
    """A control message, or a dead letter saying why it is not one."""
    try:
        if record.value is None:
            raise control.ControlError("message has no value")
        batch.controls.append(control.decode(record.value, now=now))
    except control.ControlError as exc:
        reason = "not_json" if str(exc).startswith("not JSON") else "invalid_field"
        batch.dead.append(dead_letter(record, events.EnvelopeError(reason, str(exc))))


def _prepare_slowly(
    record: Record,
    router: Router,
    max_event_bytes: int,
    batch: Batch,
    state_rules: state.Rules | None = None,
) -> events.Envelope | None:
    """The strict path: a new route, or a record to dead-letter (with its reason).

    Returns the envelope when the record was a valid event.
    """
    try:
        envelope = events.decode_envelope(record.value, max_bytes=max_event_bytes)
    except events.EnvelopeError as exc:
        batch.dead.append(dead_letter(record, exc))
        return None
    route = router.route(envelope)
    if not route.rooms:
        batch.unrouted += 1
        return envelope
    value = record.value
    assert value is not None  # decode_envelope refuses None
    envelope_json = value if len(orjson.loads(value)) == 5 else orjson.dumps(envelope.as_dict())
    item = Routed(route, envelope_json, record.topic, record.partition, record.offset)
    if state_rules is not None and route.event_type in state.STATEFUL_TYPES:
        item.state = state.ops(route.event_type, envelope.data, state_rules)
    batch.routed.append(item)
    return envelope


def slices(
    polled: Mapping[Any, Sequence[Record]], size: int
) -> Iterator[dict[Any, Sequence[Record]]]:
    """A poll cut into parts of at most ``size`` records, partition order kept."""
    part: dict[Any, Sequence[Record]] = {}
    room = size
    for partition, records in polled.items():
        start = 0
        while start < len(records):
            taken = records[start : start + room]
            part[partition] = taken
            start += len(taken)
            room -= len(taken)
            if room == 0:
                yield part
                part, room = {}, size
    if part:
        yield part


def group(records: Iterable[Record]) -> dict[tuple[str, int], list[Record]]:
    """Records as :func:`prepare` takes them: per (topic, partition), in order."""
    polled: dict[tuple[str, int], list[Record]] = {}
    for record in records:
        polled.setdefault((record.topic, record.partition), []).append(record)
    return polled


def by_org(routed: Sequence[Routed]) -> dict[str, list[Routed]]:
    """Group events per org, keeping their order (one pub/sub message per org)."""
    groups: dict[str, list[Routed]] = {}
    for item in routed:
        groups.setdefault(item.route.org, []).append(item)
    return groups
