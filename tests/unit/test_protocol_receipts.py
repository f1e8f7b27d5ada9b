"""Receipts: a client's message validated, the delivery tag, the envelopes on Kafka."""

from __future__ import annotations

import pytest

from fleetcast.protocol import events, receipts, routing

ALERT = {
    "event_id": "ev-1",
    "event_type": "alert_created",
    "organization_id": "org-a",
    "occurred_at": "2026-11-25T18:00:00Z",
    "data": {"alert_id": "al-1", "sent_by": "disp-1", "incident_id": "inc-9", "asset_id": "u-7"},
}


def test_a_tag_keeps_the_delivery_id_org_sender_and_incident() -> None:
    tag = receipts.tag_of(ALERT)
    assert tag == receipts.Tag("ev-1", "alert_created", "org-a", "disp-1", "inc-9")


def test_a_tag_ignores_a_sender_that_is_not_an_id() -> None:
    tag = receipts.tag_of({**ALERT, "data": {"sent_by": "no spaces allowed"}})
    assert tag is not None
    assert tag.sender is None
    assert tag.incident is None
    assert receipts.tag_of({"event_type": "alert_created"}) is None


@pytest.mark.parametrize("kind", receipts.CLIENT_KINDS)
def test_each_client_kind_parses(kind: str) -> None:
    assert receipts.parse({"delivery_id": "ev-1", "kind": kind}) == receipts.ClientReceipt(
        "ev-1", kind
    )


def test_an_acknowledgement_carries_a_short_response() -> None:
    got = receipts.parse({"delivery_id": "ev-1", "kind": "acknowledged", "response": "en route"})
    assert got.response == "en route"


@pytest.mark.parametrize(
    "doc",
    [
        None,
        "ev-1",
        {"kind": "delivered"},
        {"delivery_id": "", "kind": "delivered"},
        {"delivery_id": "x" * 257, "kind": "delivered"},
        {"delivery_id": "ev-1", "kind": "sent"},  # the gateway's fact, never a client's
        {"delivery_id": "ev-1", "kind": "read"},
        {"delivery_id": "ev-1", "kind": "displayed", "response": "ok"},
        {"delivery_id": "ev-1", "kind": "acknowledged", "response": "x" * 141},
        {"delivery_id": "ev-1", "kind": "acknowledged", "response": 7},
    ],
)
def test_a_bad_receipt_is_refused_with_invalid_receipt(doc: object) -> None:
    with pytest.raises(receipts.ReceiptError) as caught:
        receipts.parse(doc)
    assert caught.value.code == receipts.INVALID


def test_a_client_receipt_is_a_valid_envelope_routed_to_the_sender_and_incident_only() -> None:
    tag = receipts.tag_of(ALERT)
    assert tag is not None
    ack = receipts.ClientReceipt("ev-1", "acknowledged", "en route")
    doc = receipts.client_envelope(tag, ack, "unit-4", "sid-9", "gw-1", at=1764093600.25)
    envelope = events.validate_envelope(doc)
    assert envelope.event_id == "ev-1/sid-9/acknowledged"
    assert envelope.occurred_at == "2025-11-25T18:00:00.250Z"
    assert doc["data"] == {
        "delivery_id": "ev-1",
        "kind": "acknowledged",
        "event_type": "alert_created",
        "gateway": "gw-1",
        "user_id": "disp-1",
        "incident_id": "inc-9",
        "recipient": "unit-4",
        "session": "sid-9",
        "roles": [],
        "response": "en route",
    }
    targets = routing.route(envelope, routing.RoutingTable.default())
    assert [room.name for room in targets] == ["incident:inc-9:org:org-a", "user:disp-1:org:org-a"]


def test_sent_facts_group_per_delivery_into_one_envelope_per_flush() -> None:
    tag = receipts.tag_of(ALERT)
    other = receipts.Tag("ev-2", "alert_created", "org-a")
    assert tag is not None
    facts = [
        (tag, receipts.Recipient("u-2", "s-2", 20.0)),
        (other, receipts.Recipient("u-1", "s-1", 10.0)),
        (tag, receipts.Recipient("u-1", "s-1", 10.0)),
    ]
    grouped = receipts.group_sent(facts)
    assert list(grouped) == [tag, other]
    doc = receipts.sent_envelope(tag, grouped[tag], "gw-1", flush=3)
    events.validate_envelope(doc)
    assert doc["event_id"] == "ev-1/gw-1/sent/3"
    assert [r["session"] for r in doc["data"]["recipients"]] == ["s-1", "s-2"]
    assert doc["occurred_at"] == receipts.rfc3339(20.0)
    # no sender, no incident: durable in Kafka, routed to no room
    bare = events.validate_envelope(receipts.sent_envelope(other, grouped[other], "gw-1", 1))
    assert routing.route(bare, routing.RoutingTable.default()) == ()
