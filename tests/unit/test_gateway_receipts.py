"""Receipts at the gateway: what was written is noted, only that may be answered, once.

Pure: real delivery, outbox and receipting transport over a recording
transport; the Kafka producer is a recording sink behind the desk's seam.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest

from fleetcast.gateway.edge.auth import Claims
from fleetcast.gateway.edge.clients import Client
from fleetcast.gateway.edge.limits import TokenBucket
from fleetcast.gateway.edge.receipts import Desk, SentFlusher
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms import receipting
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.outbox import Outbox
from fleetcast.gateway.rooms.receipting import ReceiptingTransport
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol import events
from fleetcast.protocol.wire import RoutedEvent

ORG_ROOM = "org:o1"


class Wire:
    """A transport that takes frames unless told the client is behind."""

    def __init__(self) -> None:
        self.behind: set[str] = set()
        self.taken: list[tuple[str, str]] = []

    def offer(self, conn: Connection, frame: Frame) -> bool:
        if conn.sid in self.behind:
            return False
        self.taken.append((conn.sid, frame.text))
        return True

    def write(self, conn: Connection, text: str) -> bool:
        return True


class Sink:
    def __init__(self) -> None:
        self.records: list[tuple[str, str, dict[str, Any]]] = []
        self.failing = False

    async def send_record(self, topic: str, org: str, value: bytes) -> None:
        if self.failing:
            raise ConnectionError("kafka away")
        self.records.append((topic, org, orjson.loads(value)))


def alert(event_id: str = "ev-1", event_type: str = "alert_created") -> RoutedEvent:
    doc = {"event_id": event_id, "event_type": event_type, "organization_id": "o1",
           "occurred_at": "2026-01-01T00:00:00Z",
           "data": {"alert_id": "al-1", "sent_by": "disp-1"}}  # fmt: skip
    return RoutedEvent((ORG_ROOM,), {ORG_ROOM: "1-0"}, doc)


class Rig:
    def __init__(self) -> None:
        self.wire, self.sink, self.registry = Wire(), Sink(), Registry()
        self.now = 100.0
        self.noted = ReceiptingTransport(
            self.wire, frozenset({"alert_created"}), clock=lambda: self.now
        )
        outbox = Outbox(self.noted, Metrics(), max_buffered=10, cut_off=lambda c, r: None)
        self.outbox = outbox
        self.delivery = Delivery(self.registry, outbox, Metrics(), max_held=10)
        self.desk = Desk(
            self.sink, topic="fleet.receipts", gateway_id="gw-1", rate=2, burst=3,
            clock=lambda: self.now, monotonic=lambda: self.now,
        )  # fmt: skip
        self.flusher = SentFlusher(
            self.noted, self.sink, topic="fleet.receipts", gateway_id="gw-1", interval_s=1
        )

    def client(self, sid: str, org: str = "o1", user: str = "u") -> Client:
        conn = Connection(sid, "e" + sid, org, user, 0.0, open=True)
        self.registry.add(conn)
        self.registry.join(conn, f"org:{org}")
        claims = Claims(user, org, ("field_unit",), exp=0.0)
        return Client(conn, claims, deadline=0.0, requests=TokenBucket(9, 9, 0))

    def answer(self, client: Client, data: Any) -> dict[str, Any]:
        return asyncio.run(self.desk.answer(client, data))


@pytest.fixture
def rig() -> Rig:
    return Rig()


def test_a_receipted_event_written_to_a_socket_is_noted_once_per_connection(rig: Rig) -> None:
    a, b = rig.client("a", user="ua"), rig.client("b", user="ub")
    rig.delivery.deliver("o1", alert())
    rig.delivery.deliver("o1", alert("ev-2", "incident_created"))  # not a receipted type
    assert [(t.delivery_id, r.session) for t, r in rig.noted.facts] == [
        ("ev-1", "a"),
        ("ev-1", "b"),
    ]
    assert a.conn.deliveries is not None
    assert set(a.conn.deliveries) == {"ev-1"}
    assert b.conn.deliveries is not None
    assert set(b.conn.deliveries) == {"ev-1"}


def test_a_frame_waiting_in_the_outbox_is_noted_only_when_written(rig: Rig) -> None:
    a = rig.client("a")
    rig.wire.behind.add("a")
    rig.delivery.deliver("o1", alert())
    assert rig.noted.facts == []
    assert a.conn.deliveries is None
    assert rig.answer(a, {"delivery_id": "ev-1", "kind": "delivered"})["error"]["code"] == (
        "unknown_delivery"
    )
    rig.wire.behind.clear()
    rig.outbox.pump_once()
    assert [t.delivery_id for t, _ in rig.noted.facts] == ["ev-1"]


def test_each_client_kind_is_written_to_kafka_keyed_by_org_then_acked(rig: Rig) -> None:
    a = rig.client("a", user="unit-4")
    rig.delivery.deliver("o1", alert())
    for kind in ("delivered", "displayed"):
        assert rig.answer(a, {"delivery_id": "ev-1", "kind": kind}) == {
            "ok": True, "delivery_id": "ev-1", "kind": kind,
        }  # fmt: skip
    ack = {"delivery_id": "ev-1", "kind": "acknowledged", "response": "en route"}
    assert rig.answer(a, ack)["ok"] is True
    topics = {(topic, org) for topic, org, _ in rig.sink.records}
    assert topics == {("fleet.receipts", "o1")}
    docs = [doc for _, _, doc in rig.sink.records]
    assert [doc["data"]["kind"] for doc in docs] == ["delivered", "displayed", "acknowledged"]
    assert all(events.validate_envelope(doc).event_type == "alert_receipt" for doc in docs)
    assert docs[-1]["data"]["response"] == "en route"
    assert docs[-1]["data"]["recipient"] == "unit-4"
    assert docs[-1]["data"]["user_id"] == "disp-1"


def test_a_repeat_is_acked_as_duplicate_and_not_written_twice(rig: Rig) -> None:
    a = rig.client("a")
    rig.delivery.deliver("o1", alert())
    rig.answer(a, {"delivery_id": "ev-1", "kind": "delivered"})
    again = rig.answer(a, {"delivery_id": "ev-1", "kind": "delivered"})
    assert again["ok"] is True
    assert again["duplicate"] is True
    assert len(rig.sink.records) == 1


def test_a_forged_or_other_orgs_delivery_is_refused(rig: Rig) -> None:
    a = rig.client("a")
    outsider = rig.client("x", org="o2")
    rig.delivery.deliver("o1", alert())
    forged = rig.answer(a, {"delivery_id": "ev-999", "kind": "acknowledged"})
    other_org = rig.answer(outsider, {"delivery_id": "ev-1", "kind": "acknowledged"})
    malformed = rig.answer(a, {"delivery_id": "ev-1", "kind": "sent"})
    assert forged["error"]["code"] == "unknown_delivery"
    assert other_org["error"]["code"] == "unknown_delivery"
    assert malformed["error"]["code"] == "invalid_receipt"
    assert rig.sink.records == []


def test_receipts_are_rate_limited_per_connection(rig: Rig) -> None:
    a, b = rig.client("a"), rig.client("b")
    rig.delivery.deliver("o1", alert())
    answers = [rig.answer(a, {"delivery_id": "ev-1", "kind": "delivered"}) for _ in range(4)]
    assert [x["ok"] for x in answers] == [True, True, True, False]
    assert answers[-1]["error"]["code"] == "rate_limited"
    assert answers[-1]["error"]["retry_after"]
    assert rig.answer(b, {"delivery_id": "ev-1", "kind": "delivered"})["ok"] is True
    rig.now += 1.0
    assert rig.answer(a, {"delivery_id": "ev-1", "kind": "displayed"})["ok"] is True


def test_kafka_away_answers_unavailable_and_the_retry_is_written(rig: Rig) -> None:
    a = rig.client("a")
    rig.delivery.deliver("o1", alert())
    rig.sink.failing = True
    assert rig.answer(a, {"delivery_id": "ev-1", "kind": "acknowledged"})["error"]["code"] == (
        "unavailable"
    )
    rig.sink.failing = False
    assert rig.answer(a, {"delivery_id": "ev-1", "kind": "acknowledged"}) == {
        "ok": True, "delivery_id": "ev-1", "kind": "acknowledged",
    }  # fmt: skip
    assert len(rig.sink.records) == 1


def test_sent_facts_flush_as_one_record_per_delivery_and_survive_kafka_away(rig: Rig) -> None:
    for sid in ("a", "b", "c"):
        rig.client(sid)
    rig.delivery.deliver("o1", alert())
    rig.sink.failing = True
    asyncio.run(rig.flusher.flush())
    assert len(rig.noted.facts) == 3  # kept for the next flush
    rig.sink.failing = False
    asyncio.run(rig.flusher.flush())
    [(_, _, doc)] = rig.sink.records
    assert doc["data"]["kind"] == "sent"
    assert doc["data"]["gateway"] == "gw-1"
    assert [r["session"] for r in doc["data"]["recipients"]] == ["a", "b", "c"]
    assert rig.noted.facts == []


def test_a_connection_remembers_only_its_newest_deliveries(rig: Rig) -> None:
    a = rig.client("a")
    for n in range(receipting.MAX_DELIVERIES + 5):
        rig.delivery.deliver("o1", alert(f"ev-{n}"))
    assert a.conn.deliveries is not None
    assert len(a.conn.deliveries) == receipting.MAX_DELIVERIES
    assert "ev-0" not in a.conn.deliveries
    assert f"ev-{receipting.MAX_DELIVERIES + 4}" in (a.conn.deliveries)


def test_a_large_fan_out_is_split_into_records_of_bounded_size(
    rig: Rig, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("fleetcast.gateway.edge.receipts.MAX_RECIPIENTS", 2)
    for sid in ("a", "b", "c"):
        rig.client(sid)
    rig.delivery.deliver("o1", alert())
    asyncio.run(rig.flusher.flush())
    ids = [doc["event_id"] for _, _, doc in rig.sink.records]
    assert ids == ["ev-1/gw-1/sent/1.0", "ev-1/gw-1/sent/1.1"]
    sessions = [r["session"] for _, _, doc in rig.sink.records for r in doc["data"]["recipients"]]
    assert sessions == ["a", "b", "c"]
