"""Delivery records folded from receipts: per recipient, escalations folded in, a fixed order."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from fleetcast.protocol import deliveries, receipts

T0 = datetime(2026, 12, 7, 6, 0, tzinfo=UTC).timestamp()
ALERT = receipts.Tag("ev-1", "alert_created", "org-a", sender="disp-1", incident="inc-9")


def sent(tag: receipts.Tag, gateway: str, *who: tuple[str, float]) -> dict[str, Any]:
    recipients = [receipts.Recipient(user, f"s-{user}", T0 + at) for user, at in who]
    return receipts.sent_envelope(tag, recipients, gateway, 1)


def said(
    tag: receipts.Tag, who: str, kind: str, at: float, response: str | None = None
) -> dict[str, Any]:
    receipt = receipts.ClientReceipt(tag.delivery_id, kind, response)
    return receipts.client_envelope(tag, receipt, who, f"s-{who}", "gw-0", T0 + at, ["field_unit"])


def fold(envelopes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    folder = deliveries.Folder()
    for envelope in envelopes:
        folder.add(envelope)
    return folder.records()


def history() -> list[dict[str, Any]]:
    again = receipts.Tag(
        "ev-1/escalation/1", "alert_created", "org-a", "disp-1", "inc-9", of="ev-1"
    )
    return [
        sent(ALERT, "gw-0", ("unit-a", 0.1), ("disp-1", 0.1)),
        said(ALERT, "unit-a", "delivered", 0.2),
        said(ALERT, "unit-a", "displayed", 0.3),
        said(ALERT, "unit-a", "displayed", 0.9),  # a repeat keeps the first time
        sent(again, "gw-1", ("unit-b", 30.0)),
        said(again, "unit-b", "acknowledged", 31.0, "en route"),
        sent(ALERT, "gw-1", ("unit-b", 95.0)),  # offline until then: got it on reconnect
    ]


def test_one_record_per_alert_with_each_recipient_and_the_escalation_folded_in() -> None:
    [record] = fold(history())
    assert record["delivery_id"] == "ev-1"
    assert (record["event_type"], record["incident_id"], record["sender"]) == (
        "alert_created", "inc-9", "disp-1",
    )  # fmt: skip
    assert record["escalations"] == ["ev-1/escalation/1"]
    assert record["counts"] == {"sent": 3, "delivered": 2, "displayed": 2, "acknowledged": 1}
    assert record["acknowledged_by"] == ["unit-b"]
    by = {(e["delivery_id"], e["recipient"]): e for e in record["recipients"]}
    unit_a = by[("ev-1", "unit-a")]
    assert unit_a["displayed_at"] == receipts.rfc3339(T0 + 0.3)
    assert unit_a["roles"] == ["field_unit"]
    acked = by[("ev-1/escalation/1", "unit-b")]
    assert (acked["response"], acked["after_s"]) == ("en route", 29.9)
    assert by[("ev-1", "unit-b")]["after_s"] == 94.9  # the gap of an offline unit
    assert record["first_at"] == receipts.rfc3339(T0 + 0.1)
    assert record["last_at"] == receipts.rfc3339(T0 + 95.0)


def test_the_same_receipts_in_any_order_give_the_same_records_and_chain() -> None:
    from fleetcast.protocol import audit

    expected = fold(history())
    for seed in range(5):
        shuffled = history()
        random.Random(seed).shuffle(shuffled)
        got = fold(shuffled)
        assert got == expected
        assert audit.chain(got)[-1].hash == audit.chain(expected)[-1].hash


def test_unreadable_envelopes_are_skipped_and_say_so() -> None:
    folder = deliveries.Folder()
    assert (
        folder.add({"event_type": "alert_created", "organization_id": "org-a", "data": {}}) is False
    )
    assert folder.add({"event_type": receipts.RECEIPT_TYPE, "data": {"delivery_id": "x"}}) is False
    bad_kind = {"delivery_id": "x", "kind": "read"}
    assert (
        folder.add({"event_type": receipts.RECEIPT_TYPE, "organization_id": "o", "data": bad_kind})
        is False
    )
    assert folder.records() == []


def ids(chosen: list[Any]) -> list[str]:
    return [r["delivery_id"] for r in chosen]


def at(seconds: float) -> datetime:
    return datetime.fromtimestamp(T0 + seconds, UTC)


def test_select_by_org_incident_and_time_range() -> None:
    other = receipts.Tag("ev-2", "alert_created", "org-a", incident="inc-3")
    elsewhere = receipts.Tag("ev-3", "alert_created", "org-b")
    records = fold(
        [
            *history(),
            said(other, "unit-a", "delivered", 600.0),
            said(elsewhere, "u", "delivered", 5),
        ]
    )
    assert ids(deliveries.select(records, incident="inc-9")) == ["ev-1"]
    assert ids(deliveries.select(records, org="org-a")) == ["ev-1", "ev-2"]
    assert ids(deliveries.select(records, since=at(1), until=at(601))) == ["ev-2", "ev-3"]
    assert ids(deliveries.select(records, until=at(1))) == ["ev-1"]
