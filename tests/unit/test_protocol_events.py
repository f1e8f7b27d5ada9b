"""Envelope decoding: every way a message can be bad maps to one closed reason."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fleetcast.protocol import events


def envelope(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": "evt-1",
        "event_type": "incident_created",
        "organization_id": "org-42",
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": {"incident_id": "inc-9", "channel_id": "ch-3"},
    }
    doc.update(overrides)
    return doc


def test_catalog_has_the_fourteen_domain_types_on_five_topics_and_receipts_on_theirs() -> None:
    assert len(events.DOMAIN_TYPES) == 14
    assert {"alert_receipt", "alert_escalated"} == events.FLEETCAST_TYPES
    assert events.DEFAULT_TOPICS == (
        "fleet.transmissions",
        "fleet.incidents",
        "fleet.tasks",
        "fleet.assets",
        "fleet.alerts",
        "fleet.receipts",
    )


def test_a_valid_envelope_decodes_to_its_fields() -> None:
    decoded = events.decode_envelope(orjson.dumps(envelope()))
    assert decoded.as_dict() == envelope()


def test_extra_fields_are_ignored_not_fatal() -> None:
    decoded = events.decode_envelope(orjson.dumps({**envelope(), "trace_id": "t-1"}))
    assert "trace_id" not in decoded.as_dict()


def reason(raw: bytes | str | None, **kwargs: Any) -> str:
    with pytest.raises(events.EnvelopeError) as caught:
        events.decode_envelope(raw, **kwargs)
    assert caught.value.reason in events.REASONS
    return caught.value.reason


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, "not_json"),
        (b"", "not_json"),
        (b"{not json", "not_json"),
        (b"\xff\xfe", "not_json"),
        (b"[1, 2]", "not_object"),
        (b'"text"', "not_object"),
        (orjson.dumps({"event_type": "incident_created"}), "missing_field"),
        (orjson.dumps(envelope(event_id="")), "invalid_field"),
        (orjson.dumps(envelope(event_id=7)), "invalid_field"),
        (orjson.dumps(envelope(organization_id="org:other")), "invalid_field"),
        (orjson.dumps(envelope(organization_id="x" * 129)), "invalid_field"),
        (orjson.dumps(envelope(data=[1])), "invalid_field"),
        (orjson.dumps(envelope(data={"channel_id": "ch 3"})), "invalid_field"),
        (orjson.dumps(envelope(data={"user_id": 5})), "invalid_field"),
        (orjson.dumps(envelope(event_type="incident_exploded")), "unknown_type"),
    ],
)
def test_bad_messages_have_one_reason(raw: bytes | None, expected: str) -> None:
    assert reason(raw) == expected


def test_oversized_is_checked_before_parsing() -> None:
    raw = orjson.dumps(envelope(data={"note": "x" * 2000}))
    assert reason(raw, max_bytes=1000) == "oversized"
    assert events.decode_envelope(raw, max_bytes=len(raw)).event_type == "incident_created"


def test_null_room_ids_are_allowed_and_mean_absent() -> None:
    decoded = events.decode_envelope(orjson.dumps(envelope(data={"incident_id": None})))
    assert decoded.data == {"incident_id": None}


def outcome(decode: Callable[[], object]) -> str:
    """ "ok", or the reason of the EnvelopeError; any other exception propagates."""
    try:
        decode()
    except events.EnvelopeError as exc:
        return exc.reason
    return "ok"


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_arbitrary_bytes_never_raise_anything_else(raw: bytes) -> None:
    assert outcome(lambda: events.decode_envelope(raw)) in {*events.REASONS, "ok"}


FIELD_VALUES = st.one_of(
    st.none(), st.integers(), st.text(max_size=12), st.just({"channel_id": "c 1"})
)


@settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from([*events.REQUIRED_FIELDS, "other"]), FIELD_VALUES))
def test_arbitrary_objects_never_raise_anything_else(doc: dict[str, Any]) -> None:
    assert outcome(lambda: events.validate_envelope(doc)) in {*events.REASONS, "ok"}


def test_only_positions_are_not_priority() -> None:
    assert not events.is_priority("asset_position_updated")
    assert not events.is_priority(events.POSITIONS_BATCH_TYPE)
    assert all(events.is_priority(t) for t in events.EVENT_TYPES - {"asset_position_updated"})


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-25T18:00:00Z",
        "2026-11-25t18:00:00z",
        "2026-11-25T18:00:00.1Z",
        "2026-11-25T18:00:00.123456789+05:30",
        "2026-11-25T18:00:00-00:00",
        "2024-02-29T12:00:00Z",  # a leap year
        "2000-02-29T12:00:00Z",  # divisible by 400
        "2026-12-31T23:59:60Z",  # a leap second
        "2026-01-31T00:00:00Z",
        "2026-04-30T00:00:00Z",
    ],
)
def test_rfc3339_date_times_are_accepted(text: str) -> None:
    assert events.is_rfc3339(text)
    assert events.decode_envelope(orjson.dumps(envelope(occurred_at=text))).occurred_at == text


@pytest.mark.parametrize(
    "text",
    [
        "yesterday",
        "2026-11-25",  # a date is not a point in time
        "2026-11-25T18:00:00",  # no offset: local time of where?
        "2026-11-25 18:00:00Z",  # the space of RFC 3339's note, not its grammar
        "20261125T180000Z",  # ISO 8601 basic format
        "2026-11-25T18:00Z",
        "2026-11-25T18:00:00.Z",
        "2026-11-25T18:00:00+0530",
        "2026-11-25T18:00:00+24:00",
        "2026-13-01T00:00:00Z",
        "2026-00-10T00:00:00Z",
        "2026-11-00T00:00:00Z",
        "2026-04-31T00:00:00Z",
        "2025-02-29T00:00:00Z",  # not a leap year
        "1900-02-29T00:00:00Z",  # divisible by 100, not by 400
        "2026-11-25T24:00:00Z",
        "2026-11-25T18:60:00Z",
        "2026-11-25T18:00:61Z",
        "\u0662\u0660\u0662\u0666-11-25T18:00:00Z",  # digits, but not ASCII ones
        " 2026-11-25T18:00:00Z",
        "2026-11-25T18:00:00Z\n",
        "1764093600",
    ],
)
def test_anything_else_in_occurred_at_is_an_invalid_field(text: str) -> None:
    assert not events.is_rfc3339(text)
    assert reason(orjson.dumps(envelope(occurred_at=text))) == "invalid_field"
