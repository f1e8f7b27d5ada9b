"""What a counting client saw against what was produced: lost, announced, duplicates.

Pure functions over plain records (no server, no clock), unit tested in
tests/unit/test_fault_counting.py. The rule, per client:

- expected: every event Kafka acknowledged whose target rooms (the fleet room
  left out) meet the client's rooms, handed to Kafka after the client was
  armed (connected and in all its rooms). It was published after that, so a
  client that stays connected, or resumes with ``since``, must get it.
- announced: an expected event not delivered, of a room the server said the
  client may have missed events of (``resync``, or ``recovered: false`` when
  resuming) at or after the event was handed to Kafka.
- superseded: an expected position not delivered, of an asset whose later
  position the client did get. A replay sends each asset's latest position
  only (the map needs where a unit is now), so this is by design, not a loss.
- unresumable: the same, for a room the client could not name an offset for
  when it resumed (it had seen no event of that room yet): the client's own
  blind spot, kept apart so it never hides a loss or counts as one.
- lost: expected, neither delivered, announced nor unresumable.
- duplicates: deliveries of an event id beyond the first, over all the
  client's connections and rooms.
- misrouted: deliveries of an event that targets none of the client's rooms.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import NamedTuple

from tests.harness.traffic import Produced


class Delivery(NamedTuple):
    """One copy of an event a client received: when, and the ``room`` it came through."""

    at: float
    room: str


@dataclass
class Record:
    """Everything one counting client saw, in monotonic time; filled by the client."""

    name: str
    #: Full names of the client's rooms (``channel:ch-1:org:org-a``).
    rooms: frozenset[str]
    armed_at: float | None = None
    #: Event id -> each copy received.
    received: dict[str, list[Delivery]] = field(default_factory=dict)
    #: Full room name -> times the server announced a possible gap in it.
    announced: dict[str, list[float]] = field(default_factory=dict)
    #: Full room name -> times the client resumed without an offset for it.
    unresumable: dict[str, list[float]] = field(default_factory=dict)
    #: (time, gateway url) of each session after the first.
    reconnects: list[tuple[float, str]] = field(default_factory=list)
    #: (time, reason) of each connection that ended.
    disconnects: list[tuple[float, str]] = field(default_factory=list)
    resyncs: int = 0
    #: Rooms the gateway refused (in ``session`` or a subscribe ack), with the reason.
    refusals: list[str] = field(default_factory=list)
    #: Handshakes refused (``connect_error``: a draining gateway, admission control).
    connect_refusals: list[str] = field(default_factory=list)
    #: Anything else a connection attempt ran into (none is expected).
    errors: list[str] = field(default_factory=list)

    @property
    def announcements(self) -> int:
        """Rooms announced as possibly missed (``resync`` or ``recovered: false``), each time."""
        return sum(len(times) for times in self.announced.values())

    def deliver(self, event_id: str, at: float, room: str) -> None:
        self.received.setdefault(event_id, []).append(Delivery(at, room))

    def announce(self, room: str, at: float) -> None:
        self.announced.setdefault(room, []).append(at)

    def blind(self, room: str, at: float) -> None:
        self.unresumable.setdefault(room, []).append(at)


@dataclass(frozen=True, slots=True)
class Tally:
    """One client's counts (see the module docstring for each rule)."""

    expected: int
    delivered: int
    announced: int
    superseded: int
    unresumable: int
    lost: tuple[str, ...]
    duplicates: int
    #: Of the duplicates, copies that came through a room an earlier copy did not.
    cross_room: int
    misrouted: int
    #: First time the client received an event handed to Kafka at or after ``fresh_after``.
    first_fresh: float | None


def _covered(marks: Mapping[str, list[float]], rooms: Iterable[str], produced_at: float) -> bool:
    """True when one of ``rooms`` has a mark at or after ``produced_at``."""
    return any(room in marks and max(marks[room]) >= produced_at for room in rooms)


def latest_received(produced: Mapping[str, Produced], record: Record) -> dict[str, float]:
    """Latest-wins key -> when the newest event of it the client received was handed to Kafka."""
    latest: dict[str, float] = {}
    for event_id in record.received:
        event = produced.get(event_id)
        if event is not None and event.latest_wins is not None:
            latest[event.latest_wins] = max(event.at, latest.get(event.latest_wins, event.at))
    return latest


def first_fresh(produced: Mapping[str, Produced], record: Record, after: float) -> float | None:
    """When the client first got an event of its rooms handed to Kafka at or after ``after``."""
    firsts = [
        copies[0].at
        for event_id, copies in record.received.items()
        if (event := produced.get(event_id)) is not None
        and event.at >= after
        and event.rooms & record.rooms
    ]
    return min(firsts, default=None)


def tally(produced: Mapping[str, Produced], record: Record, fresh_after: float) -> Tally:
    """Count one client against the ledger of confirmed events."""
    expected = delivered = announced = superseded = unresumable = 0
    lost: list[str] = []
    newest = latest_received(produced, record)
    misrouted = sum(
        len(copies)
        for event_id, copies in record.received.items()
        if (event := produced.get(event_id)) is not None and not event.rooms & record.rooms
    )  # events not in the ledger are not ours, or their send failed: expected by nobody
    if record.armed_at is not None:
        for event_id, event in produced.items():
            mine = event.rooms & record.rooms
            if not mine or event.at < record.armed_at:
                continue
            expected += 1
            if event_id in record.received:
                delivered += 1
            elif _covered(record.announced, mine, event.at):
                announced += 1
            elif event.latest_wins is not None and newest.get(event.latest_wins, -1.0) > event.at:
                superseded += 1
            elif _covered(record.unresumable, mine, event.at):
                unresumable += 1
            else:
                lost.append(event_id)
    duplicates = sum(len(copies) - 1 for copies in record.received.values())
    cross_room = sum(len({copy.room for copy in copies}) - 1 for copies in record.received.values())
    fresh = first_fresh(produced, record, fresh_after)
    return Tally(
        expected, delivered, announced, superseded, unresumable, tuple(lost), duplicates,
        cross_room, misrouted, fresh,
    )  # fmt: skip


def outstanding(produced: Mapping[str, Produced], records: Iterable[Record]) -> int:
    """Expected events no client has yet received or been told about (a settle check)."""
    return sum(len(tally(produced, record, float("inf")).lost) for record in records)


@dataclass(frozen=True, slots=True)
class Totals:
    """A run's counts over all clients, and how long recovery took."""

    clients: int
    expected: int
    delivered: int
    announced: int
    superseded: int
    unresumable: int
    lost: int
    duplicates: int
    cross_room: int
    misrouted: int
    #: Seconds from the fault's end until every client had received a fresh event
    #: (one handed to Kafka after the fault ended); None if some client never did.
    recovery_s: float | None
    clients_with_loss: int
    reconnects: int
    resyncs: int
    announcements: int
    refusals: int
    connect_refusals: int
    errors: int
    #: Some lost event ids (for the failure message), at most ten.
    lost_sample: tuple[str, ...]
    #: What each sampled loss was: type, rooms, when (from the fault's end), whose.
    lost_detail: tuple[str, ...] = ()


def totals(produced: Mapping[str, Produced], records: list[Record], fault_end: float) -> Totals:
    tallies = [tally(produced, record, fault_end) for record in records]
    firsts = [t.first_fresh for t in tallies]
    recovery = None
    if firsts and None not in firsts:
        recovery = max(f - fault_end for f in firsts if f is not None)
    lost_ids = [event_id for t in tallies for event_id in t.lost]
    details = [
        describe_loss(produced[event_id], event_id, record, fault_end)
        for record, t in zip(records, tallies, strict=True)
        for event_id in t.lost
    ]
    return Totals(
        clients=len(records),
        expected=sum(t.expected for t in tallies),
        delivered=sum(t.delivered for t in tallies),
        announced=sum(t.announced for t in tallies),
        superseded=sum(t.superseded for t in tallies),
        unresumable=sum(t.unresumable for t in tallies),
        lost=len(lost_ids),
        duplicates=sum(t.duplicates for t in tallies),
        cross_room=sum(t.cross_room for t in tallies),
        misrouted=sum(t.misrouted for t in tallies),
        recovery_s=None if recovery is None else round(max(0.0, recovery), 3),
        clients_with_loss=sum(1 for t in tallies if t.lost),
        reconnects=sum(len(r.reconnects) for r in records),
        resyncs=sum(r.resyncs for r in records),
        announcements=sum(r.announcements for r in records),
        refusals=sum(len(r.refusals) for r in records),
        connect_refusals=sum(len(r.connect_refusals) for r in records),
        errors=sum(len(r.errors) for r in records),
        lost_sample=tuple(sorted(lost_ids)[:10]),
        lost_detail=tuple(sorted(details)[:10]),
    )


def describe_loss(event: Produced, event_id: str, record: Record, fault_end: float) -> str:
    """One lost event for a failure message: what, where, when, and the client's sessions."""
    rel = [round(at - fault_end, 2) for at, _ in record.reconnects]
    ended = [(round(at - fault_end, 2), why) for at, why in record.disconnects]
    return (
        f"{event_id} {event.event_type} {sorted(event.rooms & record.rooms)} "
        f"handed to Kafka at {event.at - fault_end:+.2f} s to {record.name}: "
        f"reconnects at {rel}, disconnects {ended}"
    )
