"""Subscribe and resume logic with a fake history whose reads live events can race."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetcast.gateway.edge.auth import Claims
from fleetcast.gateway.edge.clients import Client
from fleetcast.gateway.edge.limits import TokenBucket
from fleetcast.gateway.edge.policy import Policy
from fleetcast.gateway.edge.subscriptions import Refused, Subscriptions
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.rooms.replay import Replays
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol.wire import RoutedEvent
from tests.unit.streams_fake import FakeStreams, envelope, off

ROOM = "channel:c1:org:o1"
ORG = "org:o1"


class Recorder:
    def __init__(self) -> None:
        self.sent: list[Frame] = []

    def push(self, conn: Connection, frame: Frame) -> None:
        self.sent.append(frame)

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(frame.text[1:])[1] for frame in self.sent]

    def event_ids(self) -> list[str]:
        return [payload["event_id"] for payload in self.payloads()]


class Setup:
    def __init__(self, role: str = "dispatcher", **claims: Any) -> None:
        self.registry, self.recorder, metrics = Registry(), Recorder(), Metrics()
        self.delivery = Delivery(self.registry, self.recorder, metrics, max_held=100)
        self.streams = FakeStreams()
        self.conn = Connection("s", "e", "o1", "u", 0.0, open=True)
        self.client = Client(
            self.conn,
            Claims("u", "o1", (role,), exp=0.0, **claims),
            deadline=0.0,
            requests=TokenBucket(100, 100, 0),
        )
        self.registry.add(self.conn)
        self.subs = Subscriptions(
            self.registry, Policy.default(), Replays(self.streams, self.recorder, metrics),
            metrics, max_rooms=10, on_change=lambda sid: None,
        )  # fmt: skip

    def history(self, room: str, *numbers: int, prefix: str = "h") -> None:
        for n in numbers:
            self.streams.add(room, off(n), envelope(f"{prefix}{n}"))

    def live(self, n: int, *rooms: str, prefix: str = "l") -> None:
        rooms = rooms or (ROOM,)
        offsets = {room: off(n) for room in rooms}
        self.delivery.deliver("o1", RoutedEvent(rooms, offsets, envelope(f"{prefix}{n}")))


async def test_live_events_during_recovery_are_held_and_deduplicated() -> None:
    s = Setup()
    s.history(ROOM, 1, 2, 3, 4)

    def racing() -> None:
        for n in (3, 4, 5, 6):
            s.live(n)

    s.streams.during_read = racing
    ack = await s.subs.subscribe(s.client, {"room": "channel:c1", "since": off(1)})
    assert ack == {"ok": True, "room": "channel:c1", "recovered": True}
    assert s.recorder.event_ids() == ["h2", "h3", "h4", "l5", "l6"]
    assert s.conn.recovering is None  # l5 came after the replay's end: nothing older can follow
    s.live(7)
    assert s.recorder.event_ids()[-1] == "l7"


async def test_live_events_the_replay_sent_are_dropped_when_they_come_after_it() -> None:
    """Published before the history read, read by the listener after it: not sent twice."""
    s = Setup()
    s.history(ROOM, 1, 2, 3, 4)
    await s.subs.subscribe(s.client, {"room": "channel:c1", "since": off(1)})
    assert s.recorder.event_ids() == ["h2", "h3", "h4"]
    for n in (3, 4, 5, 6):
        s.live(n)
    assert s.recorder.event_ids() == ["h2", "h3", "h4", "l5", "l6"]
    assert s.conn.recovering is None


async def test_forbidden_room_is_never_joined() -> None:
    s = Setup(role="viewer")
    ack = await s.subs.subscribe(s.client, {"room": "channel:c1", "since": off(1)})
    assert ack["error"]["code"] == "forbidden"
    assert ROOM not in s.conn.rooms
    assert s.recorder.sent == []


@pytest.mark.parametrize("since", ["yesterday", "1-0", 5, "99999999999999999-0"])
async def test_a_since_that_is_no_offset_of_ours_is_refused(since: object) -> None:
    s = Setup()
    ack = await s.subs.subscribe(s.client, {"room": "channel:c1", "since": since})
    assert ack["error"]["code"] == "invalid_offset"
    assert ROOM not in s.conn.rooms


def test_a_malformed_since_at_connect_refuses_the_connection() -> None:
    s = Setup()
    for since in (["org"], {"org": "not an offset"}, {"channel:c1": "0-0"}):
        with pytest.raises(Refused) as refused:
            s.subs.plan_resume(s.client, since)
        assert refused.value.code == "invalid_offset"


async def test_resuming_at_connect_replays_every_room_once_in_order() -> None:
    """An event kept in the org and a channel room comes once; rooms it may not join are named."""
    s = Setup(role="field_unit", channels=frozenset({"c1"}))
    s.history(ORG, 1, 2, 3)
    s.history(ROOM, 1, prefix="seen")  # the last the client saw in the channel
    s.history(ROOM, 2, 4)  # h2 is in both rooms
    plan = s.subs.plan_resume(
        s.client, {"org": off(1), "channel:c1": off(1), "channel:secret": off(1), "fleet!": 1}
    )
    assert set(plan.refused) == {"channel:secret", "fleet!"}
    assert plan.refused["channel:secret"]["code"] == "forbidden"
    s.subs.hold(s.conn, plan)  # as on_connect: holds first, then the joins
    for name in (ORG, "user:u:org:o1"):
        s.registry.join(s.conn, name)
    s.subs.join(s.conn, plan)
    recovered = await s.subs.resume(s.conn, plan)
    assert recovered == {"org": True, "channel:c1": True}
    assert sorted(s.recorder.event_ids()) == ["h2", "h3", "h4"]
    assert s.recorder.event_ids().index("h2") < s.recorder.event_ids().index("h4")
    (both,) = [p for p in s.recorder.payloads() if p["event_id"] == "h2"]
    assert both["room"] == "channel:c1"
    assert both["offsets"] == {"channel:c1": off(2), "org": off(2)}


async def test_an_event_sent_live_through_another_room_is_not_replayed_again() -> None:
    """The user room is not resumed (no offset yet): what it delivers meanwhile is not repeated."""
    s = Setup()
    user = "user:u:org:o1"
    s.history(ORG, 1, 2)
    plan = s.subs.plan_resume(s.client, {"org": off(1)})
    s.subs.hold(s.conn, plan)
    for name in (ORG, user):
        s.registry.join(s.conn, name)
    s.streams.during_read = lambda: s.live(2, user, ORG, prefix="h")
    await s.subs.resume(s.conn, plan)
    assert s.recorder.event_ids() == ["h2"]


async def test_a_long_gap_replays_what_matters_first_and_only_where_assets_are_now() -> None:
    """Alerts and tasks missed come first, in order; then each asset's latest position only."""
    s = Setup()
    asset = "asset:a1:org:o1"
    s.registry.join(s.conn, asset)
    s.streams.add(asset, off(1), envelope("seen"))
    fresh = "2099-01-01T00:00:00Z"  # a position not yet stale
    for n in (2, 3, 4):
        position = {**envelope(f"p{n}", asset_id="a1"), "event_type": "asset_position_updated",
                    "occurred_at": fresh}  # fmt: skip
        s.streams.add(asset, off(n), position)
    s.streams.add(asset, off(5), envelope("alert-after"))
    holds = s.subs._replays.hold(s.conn, [asset])
    await s.subs._replays.replay(s.conn, {asset: off(1)}, holds)
    assert s.recorder.event_ids() == ["alert-after", "p4"]
