"""The Redis wire format: JSON, versioned, round-trips, refuses anything else."""

from __future__ import annotations

import orjson
import pytest

from fleetcast.protocol import wire

EVENT = {
    "event_id": "e-1",
    "event_type": "incident_created",
    "organization_id": "org-42",
    "occurred_at": "2026-11-25T18:00:00Z",
    "data": {"incident_id": "inc-9"},
}


def test_round_trip() -> None:
    batch = [
        wire.RoutedEvent(
            ("incident:inc-9:org:org-42", "org:org-42"),
            {"incident:inc-9:org:org-42": "1-0", "org:org-42": "1-1"},
            EVENT,
        ),
        wire.RoutedEvent(("fleet:org:org-42",), {}, {**EVENT, "event_id": "e-2"}),
    ]
    org, decoded = wire.decode(wire.encode("org-42", batch))
    assert org == "org-42"
    assert decoded == batch


def test_the_encoding_is_compact_json_in_a_fixed_key_order() -> None:
    raw = wire.encode("o", [wire.RoutedEvent(("org:o",), {"org:o": "5-0"}, {"a": 1})])
    expected = b'{"v":1,"org":"o","events":[{"rooms":["org:o"],"offsets":{"org:o":"5-0"},'
    assert raw == expected + b'"event":{"a":1}}]}'


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        orjson.dumps({"v": 2, "org": "o", "events": []}),
        orjson.dumps({"org": "o", "events": []}),
        orjson.dumps({"v": 1, "events": []}),
        orjson.dumps({"v": 1, "org": "o", "events": [{"rooms": ["org:o"]}]}),
        orjson.dumps({"v": 1, "org": "o", "events": 5}),
    ],
)
def test_anything_else_is_a_wire_error(raw: bytes) -> None:
    with pytest.raises(wire.WireError):
        wire.decode(raw)


def test_missing_offsets_mean_none() -> None:
    raw = orjson.dumps({"v": 1, "org": "o", "events": [{"rooms": ["org:o"], "event": EVENT}]})
    assert wire.decode(raw)[1][0].offsets == {}


def test_a_traced_item_carries_its_traceparent_to_the_gateway() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    item = wire.RoutedEvent(("org:o",), {"org:o": "5-0"}, EVENT, traceparent)
    raw = wire.encode("o", [item, wire.RoutedEvent(("org:o",), {}, EVENT)])
    assert b'"rooms":["org:o"],"tp":"' + traceparent.encode() + b'","offsets"' in raw
    traced, plain = wire.decode(raw)[1]
    assert traced.traceparent == traceparent
    assert plain.traceparent is None
    assert "tp" not in traced.event  # the envelope, which clients get, never holds it
