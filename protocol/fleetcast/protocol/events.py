"""The event catalog and the envelope every Kafka message carries.

Decoding is strict and never raises anything but :class:`EnvelopeError`,
whose ``reason`` is one short word: it becomes the dead-letter header and a
metric label, so the set of reasons is closed (see :data:`REASONS`).
"""

from __future__ import annotations

import calendar
import re
from dataclasses import dataclass, field
from typing import Any, Final

import orjson

from fleetcast.protocol import escalation, receipts, rooms

#: Default topic of each event type (DESIGN.md, "Events").
CATALOG: Final[dict[str, str]] = {
    "transmission_started": "fleet.transmissions",
    "transmission_completed": "fleet.transmissions",
    "transcription_completed": "fleet.transmissions",
    "transmission_tagged": "fleet.transmissions",
    "incident_created": "fleet.incidents",
    "incident_updated": "fleet.incidents",
    "incident_status_changed": "fleet.incidents",
    "task_assigned": "fleet.tasks",
    "task_completed": "fleet.tasks",
    "task_updated": "fleet.tasks",
    "asset_position_updated": "fleet.assets",
    "asset_status_changed": "fleet.assets",
    "alert_created": "fleet.alerts",
    "alert_acknowledged": "fleet.alerts",
    escalation.ESCALATED_TYPE: "fleet.alerts",
    receipts.RECEIPT_TYPE: receipts.DEFAULT_TOPIC,
}
EVENT_TYPES: Final = frozenset(CATALOG)
#: Types fleetcast writes itself (receipts, escalations), not the domain services.
FLEETCAST_TYPES: Final = frozenset({receipts.RECEIPT_TYPE, escalation.ESCALATED_TYPE})
DOMAIN_TYPES: Final = EVENT_TYPES - FLEETCAST_TYPES
DEFAULT_TOPICS: Final = tuple(dict.fromkeys(CATALOG.values()))
DEFAULT_DLQ_TOPIC: Final = "fleet.dlq"

#: Positions are the bulk of all traffic (96-98%): they may be batched and
#: conflated; every other type is a priority event, never dropped or delayed.
POSITION_TYPE: Final = "asset_position_updated"
#: The batched form a fleet room receives instead of single positions.
POSITIONS_BATCH_TYPE: Final = "asset_positions"

#: Largest envelope accepted, in bytes of JSON. Dispatch events are ~300 B;
#: anything near this is a producer bug and goes to the dead-letter topic.
DEFAULT_MAX_EVENT_BYTES: Final = 64 * 1024

REQUIRED_FIELDS: Final = ("event_id", "event_type", "organization_id", "occurred_at", "data")
#: ``data`` keys that name rooms; their values must be valid ids when present.
ROOM_ID_KEYS: Final = ("channel_id", "incident_id", "asset_id", "user_id")

#: RFC 3339 (section 5.6) date-time: a full date, "T", a full time with an
#: optional fraction, and an offset, which is required ("Z" or +hh:mm / -hh:mm);
#: "T" and "Z" in either case, second 60 allowed (a leap second), ASCII digits
#: only. Field ranges are in the pattern; days 29-31 are checked against the
#: calendar by :func:`is_rfc3339`.
RFC3339_DATE_TIME: Final = re.compile(
    r"[0-9]{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|[12][0-9]|3[01])[Tt]"
    r"(?:[01][0-9]|2[0-3]):[0-5][0-9]:(?:[0-5][0-9]|60)(?:\.[0-9]+)?"
    r"(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])",
    re.ASCII,
)

#: Days of each month (1-12) outside February.
MONTH_DAYS: Final = (0, 31, 0, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

REASONS: Final = frozenset(
    {"oversized", "not_json", "not_object", "missing_field", "invalid_field", "unknown_type"}
)


class EnvelopeError(ValueError):
    """An event that cannot be delivered; ``reason`` is one of :data:`REASONS`."""

    def __init__(self, reason: str, message: str) -> None:
        assert reason in REASONS, reason
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Envelope:
    """A validated event, exactly as the domain service wrote it."""

    event_id: str
    event_type: str
    organization_id: str
    occurred_at: str
    data: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "organization_id": self.organization_id,
            "occurred_at": self.occurred_at,
            "data": self.data,
        }


def decode_envelope(
    raw: bytes | str | None,
    *,
    max_bytes: int = DEFAULT_MAX_EVENT_BYTES,
    event_types: frozenset[str] = EVENT_TYPES,
) -> Envelope:
    """Decode and validate one Kafka message value."""
    if raw is None:
        raise EnvelopeError("not_json", "message has no value")
    if len(raw) > max_bytes:
        raise EnvelopeError("oversized", f"event is {len(raw)} bytes, limit {max_bytes}")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise EnvelopeError("not_json", f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise EnvelopeError("not_object", "event must be a JSON object")
    return validate_envelope(doc, event_types=event_types)


def validate_envelope(
    doc: dict[str, Any], *, event_types: frozenset[str] = EVENT_TYPES
) -> Envelope:
    """Check fields of an already parsed envelope."""
    missing = [name for name in REQUIRED_FIELDS if name not in doc]
    if missing:
        raise EnvelopeError("missing_field", f"missing field(s): {', '.join(missing)}")
    for name in ("event_id", "event_type", "occurred_at"):
        value = doc[name]
        if not isinstance(value, str) or not value or len(value) > 256:
            raise EnvelopeError("invalid_field", f"{name} must be a non-empty string")
    if not is_rfc3339(doc["occurred_at"]):
        raise EnvelopeError(
            "invalid_field", "occurred_at must be an RFC 3339 date-time, e.g. 2026-11-25T18:00:00Z"
        )
    if not rooms.is_valid_id(doc["organization_id"]):
        raise EnvelopeError("invalid_field", "organization_id is not a valid id")
    data = doc["data"]
    if not isinstance(data, dict):
        raise EnvelopeError("invalid_field", "data must be an object")
    for key in ROOM_ID_KEYS:
        if key in data and data[key] is not None and not rooms.is_valid_id(data[key]):
            raise EnvelopeError("invalid_field", f"data.{key} is not a valid id")
    if doc["event_type"] not in event_types:
        raise EnvelopeError("unknown_type", f"unknown event_type {doc['event_type'][:64]!r}")
    return Envelope(
        doc["event_id"], doc["event_type"], doc["organization_id"], doc["occurred_at"], data
    )


def is_rfc3339(text: str) -> bool:
    """Whether ``text`` is an RFC 3339 date-time with its offset (see RFC3339_DATE_TIME).

    Clients sort, age and display events by ``occurred_at``, and the gateway's
    latency metric parses it: a value that is not a point in time ("yesterday",
    a date alone, a local time with no offset) is refused at the door.
    Called for every event on the consumer's fast path, so a regex, not a parser.
    """
    # Positions are fixed once the pattern matched: the day is text[8:10].
    return RFC3339_DATE_TIME.fullmatch(text) is not None and (
        text[8:10] <= "28" or _day_exists(text)
    )


def _day_exists(text: str) -> bool:
    """Days 29-31 of a matched date-time: does the month have that day?"""
    day, month = int(text[8:10]), int(text[5:7])
    if month == 2:
        return day == 29 and calendar.isleap(int(text[:4]))
    return day <= MONTH_DAYS[month]


def is_priority(event_type: str) -> bool:
    """Priority events are never conflated, dropped or queued behind positions."""
    return event_type != POSITION_TYPE and event_type != POSITIONS_BATCH_TYPE
