"""Subscribe/recovery logic with a fake history reader that lets live events race the read."""

from __future__ import annotations

import json
from typing import Any

from fleetcast.gateway.edge.auth import Claims
from fleetcast.gateway.edge.clients import Client
from fleetcast.gateway.edge.limits import TokenBucket
from fleetcast.gateway.edge.policy import Policy
from fleetcast.gateway.edge.subscriptions import Subscriptions
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol import keys
from fleetcast.protocol.wire import RoutedEvent

ROOM = "channel:c1:org:o1"


def live(delivery: Delivery, n: int) -> None:
    delivery.deliver("o1", RoutedEvent((ROOM,), {ROOM: f"{n}-0"}, envelope(f"l{n}")))


def envelope(event_id: str) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": "incident_updated", "organization_id": "o1",
            "occurred_at": "2026-11-25T18:00:00Z", "data": {"channel_id": "c1"}}  # fmt: skip


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Frame] = []

    def push(self, conn: Connection, frame: Frame) -> None:
        self.sent.append(frame)

    def event_ids(self) -> list[str]:
        return [json.loads(frame.text[1:])[1]["event_id"] for frame in self.sent]


class RacingReader:
    """Returns history h2..h4 after since=1-0, while live events l3..l6 arrive mid-read."""

    def __init__(self, delivery: Delivery, during: tuple[int, ...] = (3, 4, 5, 6)) -> None:
        self.delivery = delivery
        self.during = during

    async def first_and_after(
        self, stream: str, since: str, count: int
    ) -> tuple[list[Any], list[Any]]:
        for n in self.during:  # l3, l4 duplicate history entries 3-0, 4-0
            live(self.delivery, n)
        field = keys.HISTORY_FIELD.encode()
        entries = [
            (f"{n}-0".encode(), {field: json.dumps(envelope(f"h{n}")).encode()})
            for n in (1, 2, 3, 4)
        ]
        return entries[:1], entries[1:]


def setup(
    role: str = "dispatcher", during: tuple[int, ...] = (3, 4, 5, 6)
) -> tuple[Subscriptions, Client, Recorder, Delivery]:
    registry, recorder, metrics = Registry(), Recorder(), Metrics()
    delivery = Delivery(registry, recorder, metrics, max_held=100)
    claims = Claims("u", "o1", (role,), exp=0.0)
    conn = Connection("s", "e", "o1", "u", 0.0, open=True)
    client = Client(conn, claims, deadline=0.0, requests=TokenBucket(100, 100, 0))
    registry.add(conn)
    changed: list[str] = []
    reader = RacingReader(delivery, during)
    subs = Subscriptions(registry, Policy.default(), reader, recorder, metrics,
                         max_rooms=10, on_change=changed.append)  # fmt: skip
    return subs, client, recorder, delivery


async def test_live_events_during_recovery_are_held_and_deduplicated() -> None:
    subs, client, recorder, delivery = setup()
    conn = client.conn
    ack = await subs.subscribe(client, {"room": "channel:c1", "since": "1-0"})
    assert ack == {"ok": True, "room": "channel:c1", "recovered": True}
    assert recorder.event_ids() == ["h2", "h3", "h4", "l5", "l6"]
    assert conn.recovering is None  # l5 came after the replay's end: nothing older can follow
    delivery.deliver("o1", RoutedEvent((ROOM,), {ROOM: "7-0"}, envelope("l7")))
    assert recorder.event_ids()[-1] == "l7"


async def test_live_events_the_replay_sent_are_dropped_when_they_come_after_it() -> None:
    """Published before the history read, read by the listener after it: not sent twice."""
    subs, client, recorder, delivery = setup(during=())
    conn = client.conn
    await subs.subscribe(client, {"room": "channel:c1", "since": "1-0"})
    assert recorder.event_ids() == ["h2", "h3", "h4"]
    for n in (3, 4, 5, 6):
        live(delivery, n)
    assert recorder.event_ids() == ["h2", "h3", "h4", "l5", "l6"]
    assert conn.recovering is None


async def test_forbidden_room_is_never_joined() -> None:
    subs, client, recorder, _ = setup(role="viewer")
    conn = client.conn
    ack = await subs.subscribe(client, {"room": "channel:c1", "since": "1-0"})
    assert ack["error"]["code"] == "forbidden"
    assert ROOM not in conn.rooms
    assert recorder.sent == []


async def test_rooms_recovered_at_connect_are_held_before_anything_else() -> None:
    """Holds go up for every automatic room first: no live event slips in before its replay."""
    subs, client, _, _ = setup(during=())
    conn = client.conn
    planned = subs.hold_at_connect(client, {"org": "1-0", "user:u": "not an offset"})
    assert [(p.room.client_name, p.since) for p in planned] == [("org", "1-0"), ("user:u", None)]
    assert set(conn.recovering or {}) == {"org:o1"}
    subs._registry.join(conn, "org:o1")  # as on_connect does, between the two steps
    results = await subs.recover_at_connect(conn, planned)
    assert results == {"org": True, "user:u": False}
