"""Benchmark events: realistic dispatch envelopes with a probe for timing.

Each event is a real envelope (the size and shape of what domain services
write, ~250-350 bytes of JSON) whose ``data`` ends with ``bph`` (the
measuring phase it belongs to), ``bseq`` (its sequence number in the phase)
and ``bt`` (``time.monotonic_ns()`` when it was published or produced), which
the load generator reads on arrival. Target rooms come from the shared
routing table, exactly as the consumer computes them.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fleetcast.protocol import events, routing, wire

TABLE = routing.RoutingTable.default()
#: Category names: positions may be conflated for slow clients, the rest never.
CATEGORIES = ("priority", "position")
PRIORITY, POSITION = 0, 1


@dataclass(slots=True)
class _Phase:
    current: int = 0


_phase = _Phase()


def new_phase() -> int:
    """Start a measuring phase: events stamped from now on carry its number.

    A delivery that arrives after its phase ended (a server far behind) is
    then counted as stray by the next phase, never as one of its events.
    """
    _phase.current += 1
    return _phase.current


def current_phase() -> int:
    return _phase.current


@dataclass(frozen=True, slots=True)
class BenchEvent:
    """One event of a phase: its envelope, the rooms it goes to, its category."""

    seq: int
    envelope: dict[str, Any]
    rooms: tuple[str, ...]

    @property
    def org(self) -> str:
        org: str = self.envelope["organization_id"]
        return org

    @property
    def category(self) -> int:
        return POSITION if self.envelope["event_type"] == events.POSITION_TYPE else PRIORITY

    def stamped(self, now_ns: int, event_id: str | None = None) -> dict[str, Any]:
        """The envelope with its probe (``bph``, ``bseq``, ``bt``) as the last keys of ``data``."""
        data = {**self.envelope["data"], "bph": _phase.current, "bseq": self.seq, "bt": now_ns}
        return {**self.envelope, "event_id": event_id or self.envelope["event_id"], "data": data}

    def offsets(self) -> dict[str, str]:
        """A history offset per room that keeps history (the fleet room keeps none)."""
        ms = time.time_ns() // 1_000_000
        return {r: f"{ms}-{self.seq}" for r in self.rooms if not r.startswith("fleet:")}


def make(seq: int, event_type: str, org: str, data: dict[str, Any]) -> BenchEvent:
    envelope = {
        "event_id": f"bench-{org}-{seq}-{time.monotonic_ns()}",
        "event_type": event_type,
        "organization_id": org,
        "occurred_at": "2026-11-25T18:00:00.000Z",
        "data": data,
    }
    target = routing.route(events.validate_envelope(envelope), TABLE)
    return BenchEvent(seq, envelope, tuple(room.name for room in target))


def wire_message(org: str, batch: Sequence[BenchEvent], now_ns: int | None = None) -> bytes:
    """The Redis pub/sub message the consumer would publish for ``batch``, stamped now."""
    stamp = time.monotonic_ns() if now_ns is None else now_ns
    return wire.encode(
        org,
        [wire.RoutedEvent(e.rooms, e.offsets(), e.stamped(stamp)) for e in batch],
    )


def kafka_value(event: BenchEvent, *, event_id: str | None = None) -> bytes:
    """The Kafka message value a domain service would produce, stamped now."""
    return orjson.dumps(event.stamped(time.monotonic_ns(), event_id))


# --- realistic payloads ------------------------------------------------------------


def transmission(seq: int, org: str, channel: str) -> BenchEvent:
    return make(
        seq,
        "transmission_started",
        org,
        {
            "transmission_id": f"tx-{seq:08d}",
            "channel_id": channel,
            "talkgroup": "TG-4021 Dispatch North",
            "radio_id": f"radio-{seq % 997:04d}",
            "unit_callsign": f"N-{seq % 89:02d}",
            "priority": "normal",
            "started_at": "2026-11-25T18:00:00.000Z",
        },
    )


def position(seq: int, org: str, asset: str) -> BenchEvent:
    return make(
        seq,
        events.POSITION_TYPE,
        org,
        {
            "asset_id": asset,
            "lat": 45.50884 + (seq % 1000) * 1e-5,
            "lon": -73.58781 - (seq % 700) * 1e-5,
            "heading": seq % 360,
            "speed_kmh": 42.5,
            "accuracy_m": 4.2,
            "source": "avl",
            "reported_at": "2026-11-25T18:00:00.000Z",
        },
    )


def incident_update(seq: int, org: str, incident: str, channel: str) -> BenchEvent:
    return make(
        seq,
        "incident_updated",
        org,
        {
            "incident_id": incident,
            "channel_id": channel,
            "status": "en_route",
            "priority": 2,
            "summary": "Structure fire, 2nd floor, smoke visible",
            "updated_by": "dispatcher-7",
        },
    )


def alert(seq: int, org: str) -> BenchEvent:
    return make(
        seq,
        "alert_created",
        org,
        {
            "alert_id": f"al-{seq:08d}",
            "severity": "critical",
            "kind": "emergency_button",
            "message": "Emergency button pressed, unit requests assistance",
        },
    )
