"""Delivery (once per connection, room/offset of the first room) and the outbox.

Pure: a registry with fake connections, a recording sender/transport.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.outbox import Outbox
from fleetcast.gateway.rooms.registry import Connection, Hold, Registry
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol import rooms
from fleetcast.protocol.wire import RoutedEvent


def conn(sid: str, org: str = "o1", user: str = "u") -> Connection:
    return Connection(sid, "e" + sid, org, user, 0.0, open=True)


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Frame]] = []

    def push(self, c: Connection, frame: Frame) -> None:
        self.sent.append((c.sid, frame))


def event(event_type: str = "incident_created", **data: Any) -> dict[str, Any]:
    return {"event_id": "e1", "event_type": event_type, "organization_id": "o1",
            "occurred_at": "2026-01-01T00:00:00Z", "data": data}  # fmt: skip


def decoded(frame: Frame) -> tuple[str, dict[str, Any]]:
    assert frame.text.startswith("2")
    name, payload = json.loads(frame.text[1:])
    return name, payload


@pytest.fixture
def setup() -> tuple[Registry, Recorder, Delivery]:
    registry, recorder = Registry(), Recorder()
    return registry, recorder, Delivery(registry, recorder, Metrics(), max_held=3)


def test_once_per_connection_through_first_room(setup: tuple[Registry, Recorder, Delivery]) -> None:
    registry, recorder, delivery = setup
    a, b, c = conn("a"), conn("b"), conn("c")
    for x in (a, b, c):
        registry.add(x)
    registry.join(a, "channel:c1:org:o1")
    registry.join(a, "org:o1")
    registry.join(b, "org:o1")
    registry.join(b, "incident:i1:org:o1")
    registry.join(c, "incident:i1:org:o1")
    routed = RoutedEvent(
        ("channel:c1:org:o1", "incident:i1:org:o1", "org:o1"),
        {"channel:c1:org:o1": "5-0", "incident:i1:org:o1": "7-1", "org:o1": "9-0"},
        event(channel_id="c1", incident_id="i1"),
    )
    assert delivery.deliver("o1", routed) == 3
    got = {sid: decoded(frame)[1] for sid, frame in recorder.sent}
    assert len(recorder.sent) == 3
    assert (got["a"]["room"], got["a"]["offset"]) == ("channel:c1", "5-0")
    assert (got["b"]["room"], got["b"]["offset"]) == ("incident:i1", "7-1")
    assert (got["c"]["room"], got["c"]["offset"]) == ("incident:i1", "7-1")
    assert decoded(recorder.sent[0][1])[0] == "incident_created"
    frames = {sid: frame for sid, frame in recorder.sent}
    assert frames["b"] is frames["c"]  # encoded once per (event, room)


def test_payload_is_envelope_plus_room_and_offset(
    setup: tuple[Registry, Recorder, Delivery],
) -> None:
    registry, recorder, delivery = setup
    a = conn("a")
    registry.add(a)
    registry.join(a, "fleet:org:o1")
    delivery.deliver("o1", RoutedEvent(("fleet:org:o1",), {}, event("asset_position_updated")))
    [(_, frame)] = recorder.sent
    assert decoded(frame)[1] == {**event("asset_position_updated"), "room": "fleet"}
    assert frame.priority is False
    assert frame.offset is None


def test_rooms_of_another_org_are_dropped(setup: tuple[Registry, Recorder, Delivery]) -> None:
    registry, recorder, delivery = setup
    other = conn("x", org="o2")
    registry.add(other)
    registry.join(other, "org:o2")
    assert delivery.deliver("o1", RoutedEvent(("org:o2",), {}, event())) == 0
    assert recorder.sent == []


def test_order_is_kept_within_a_room(setup: tuple[Registry, Recorder, Delivery]) -> None:
    registry, recorder, delivery = setup
    a = conn("a")
    registry.add(a)
    registry.join(a, "org:o1")
    for i in range(20):
        delivery.deliver("o1", RoutedEvent(("org:o1",), {"org:o1": f"{i}-0"}, event()))
    assert [frame.offset for _, frame in recorder.sent] == [f"{i}-0" for i in range(20)]


def test_recovering_room_holds_frames(setup: tuple[Registry, Recorder, Delivery]) -> None:
    registry, recorder, delivery = setup
    a = conn("a")
    registry.add(a)
    registry.join(a, "org:o1")
    hold = Hold()
    a.recovering = {"org:o1": hold}
    for i in range(5):
        delivery.deliver("o1", RoutedEvent(("org:o1",), {"org:o1": f"{i}-0"}, event()))
    assert recorder.sent == []
    assert [f.offset for f in hold.frames] == ["0-0", "1-0", "2-0"]
    assert hold.overflowed


def test_room_name_helpers() -> None:
    assert rooms.client_name("channel:c:org:o", "o") == "channel:c"
    assert rooms.client_name("fleet:org:o", "o") == "fleet"
    assert rooms.client_name("org:o", "o") == "org"
    assert rooms.belongs_to("asset:a:org:o", "o")
    assert not rooms.belongs_to("asset:a:org:o2", "o")
    assert not rooms.belongs_to("org:o2", "o")


#: Frames the fake transport takes before the client counts as behind.
TRANSPORT_WATERMARK = 64


class FakeTransport:
    """Takes frames while fewer than TRANSPORT_WATERMARK are unread (a test clears them)."""

    def __init__(self) -> None:
        self.queues: dict[str, list[str]] = {}
        self.aborted: list[str] = []

    def offer(self, c: Connection, frame: Frame) -> bool:
        if len(self.queues.get(c.sid, [])) >= TRANSPORT_WATERMARK:
            return False
        return self.write(c, frame.text)

    def write(self, c: Connection, text: str) -> bool:
        self.queues.setdefault(c.sid, []).append(text)
        return True

    async def abort(self, c: Connection) -> None:
        self.aborted.append(c.sid)

    def release(self, c: Connection) -> None:
        pass


def make_outbox(max_buffered: int = 8) -> tuple[Outbox, FakeTransport, list[tuple[str, str]]]:
    transport, cut = FakeTransport(), []
    outbox = Outbox(transport, Metrics(), max_buffered=max_buffered,
                    cut_off=lambda c, reason: cut.append((c.sid, reason)))  # fmt: skip
    return outbox, transport, cut


def test_outbox_writes_through_when_idle() -> None:
    outbox, transport, _ = make_outbox()
    a = conn("a")
    outbox.push(a, Frame("x", True))
    assert transport.queues["a"] == ["x"]


def test_outbox_holds_until_open_and_sends_session_first() -> None:
    outbox, transport, _ = make_outbox()
    a = conn("a")
    a.open = False
    outbox.push(a, Frame("p1", False))
    outbox.push(a, Frame("alert", True))
    assert "a" not in transport.queues
    outbox.open(a, "session")
    assert transport.queues["a"] == ["session", "alert", "p1"]


def test_priority_frames_overtake_queued_positions() -> None:
    outbox, transport, _ = make_outbox(max_buffered=100)
    a = conn("a")
    for i in range(TRANSPORT_WATERMARK + 5):
        outbox.push(a, Frame(f"pos{i}", False))
    outbox.push(a, Frame("alert", True))
    transport.queues["a"].clear()  # the client read everything in the transport
    outbox._flush(a)
    assert transport.queues["a"][0] == "alert"
    assert transport.queues["a"][1:] == [
        f"pos{i}" for i in range(TRANSPORT_WATERMARK, TRANSPORT_WATERMARK + 5)
    ]


def test_stalled_client_sheds_positions_then_is_cut_off() -> None:
    outbox, _, cut = make_outbox(max_buffered=8)
    a = conn("a")
    for i in range(TRANSPORT_WATERMARK):  # the transport is full and takes nothing more
        outbox.push(a, Frame(f"fill{i}", True))
    for i in range(4):
        outbox.push(a, Frame(f"alert{i}", True))
    for i in range(10):
        outbox.push(a, Frame(f"pos{i}", False))
    assert a.backlog() == 14  # within the burst allowance until the pump sees it stalled
    assert outbox.pump_once() == 0
    assert a.backlog() == 8
    assert [f.text for f in a.bulk or []] == ["pos6", "pos7", "pos8", "pos9"]
    assert cut == []
    for i in range(4, 9):
        outbox.push(a, Frame(f"alert{i}", True))
    outbox.pump_once()
    assert cut == [("a", "slow_consumer")]


def test_reading_client_may_take_a_burst_without_loss() -> None:
    outbox, transport, cut = make_outbox(max_buffered=8)
    a = conn("a")
    for i in range(TRANSPORT_WATERMARK + 30):
        outbox.push(a, Frame(f"pos{i}", False))
    assert a.backlog() == 30
    while a.backlog():
        transport.queues["a"].clear()  # the client keeps reading
        assert outbox.pump_once() > 0
    assert cut == []


def test_burst_beyond_the_allowance_is_shed_at_once() -> None:
    outbox, _, cut = make_outbox(max_buffered=8)
    a = conn("a")
    for i in range(TRANSPORT_WATERMARK + 40):
        outbox.push(a, Frame(f"pos{i}", False))
    # the 33rd queued frame (over 4 x 8) shed the queue down to the 8 newest
    queued = [f.text for f in a.bulk or []]
    assert queued == [f"pos{i}" for i in range(TRANSPORT_WATERMARK + 25, TRANSPORT_WATERMARK + 40)]
    assert cut == []


def test_after_the_replay_live_frames_it_covered_are_dropped_until_a_newer_one(
    setup: tuple[Registry, Recorder, Delivery],
) -> None:
    """A frame published before the history read may reach the listener after it."""
    registry, recorder, delivery = setup
    a = conn("a")
    registry.add(a)
    registry.join(a, "org:o1")
    hold = Hold(replayed=(5, 0))  # the replay sent everything up to 5-0
    a.recovering = {"org:o1": hold}
    for offset in ("4-0", "5-0", "6-0", "5-0"):
        delivery.deliver("o1", RoutedEvent(("org:o1",), {"org:o1": offset}, event()))
    assert [frame.offset for _, frame in recorder.sent] == ["6-0", "5-0"]
    assert a.recovering is None  # the first newer frame ended the filter
