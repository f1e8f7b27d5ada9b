"""Gap recovery for connected clients (rooms/recovery.py) over a fake history, without Redis."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms import recovery
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol.wire import RoutedEvent
from tests.unit.streams_fake import FakeStreams, envelope, off

ORG, CHANNEL = "org:o1", "channel:c1:org:o1"


class PerConnection:
    def __init__(self) -> None:
        self.sent: dict[str, list[tuple[str, dict[str, Any]]]] = {}

    def push(self, conn: Connection, frame: Frame) -> None:
        name, payload = json.loads(frame.text[1:])
        self.sent.setdefault(conn.sid, []).append((name, payload))

    def ids(self, sid: str) -> list[str]:
        return [p["event_id"] for name, p in self.sent.get(sid, []) if name != "resync"]

    def resyncs(self, sid: str) -> list[dict[str, Any]]:
        return [p for name, p in self.sent.get(sid, []) if name == "resync"]


class Fleet:
    def __init__(self) -> None:
        self.resent: list[str] = []

    def resend(self, conn: Connection) -> None:
        self.resent.append(conn.sid)


class Setup:
    def __init__(self) -> None:
        self.registry, self.sender, self.metrics = Registry(), PerConnection(), Metrics()
        self.delivery = Delivery(self.registry, self.sender, self.metrics, max_held=100)
        self.streams, self.fleet = FakeStreams(), Fleet()
        self.tasks: list[asyncio.Task[Any]] = []
        self.gaps = recovery.GapRecovery(
            self.registry, self.delivery, self.streams, self.sender, self.metrics,
            spawn=self.spawn, fleet=self.fleet, retry_delays_s=(0.0, 0.0),
        )  # fmt: skip
        self.watch = recovery.GapWatch(
            self.gaps, self.streams, self.metrics, spawn=self.spawn, interval_s=1
        )

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self.tasks.append(task)
        return task

    async def settle(self) -> None:
        while any(not t.done() for t in self.tasks):
            await asyncio.gather(*self.tasks)

    def member(self, sid: str, *rooms: str) -> Connection:
        conn = Connection(sid, "e" + sid, "o1", sid, 0.0, open=True)
        self.registry.add(conn)
        for room in rooms:
            self.registry.join(conn, room)
        return conn

    def event(self, n: int, *rooms: str) -> RoutedEvent:
        return RoutedEvent(rooms, {room: off(n) for room in rooms}, envelope(f"e{n}"))

    def published(self, n: int, *rooms: str) -> RoutedEvent:
        """In history (as the consumer's script XADDs), not yet delivered."""
        for room in rooms:
            self.streams.add(room, off(n), envelope(f"e{n}"))
        return self.event(n, *rooms)


async def test_connected_clients_get_what_the_break_lost_once_and_in_order() -> None:
    s = Setup()
    s.member("a", ORG, CHANNEL)
    s.member("b", ORG)
    s.delivery.deliver("o1", s.published(1, CHANNEL, ORG))  # delivered before the break
    for n in (2, 3):
        s.published(n, CHANNEL, ORG)  # lost by pub/sub
    late = [s.published(n, ORG) for n in (4, 5)]
    # 4 arrives live while the history is read (covered by the replay), 5 after the read
    s.streams.during_read = lambda: s.delivery.deliver("o1", late[0])
    s.gaps.request("o1", "reconnect")
    s.delivery.deliver("o1", late[1])  # held: the org is paused from the request on
    await s.settle()
    assert s.sender.ids("a") == ["e1", "e2", "e3", "e4", "e5"]
    assert s.sender.ids("b") == ["e1", "e2", "e3", "e4", "e5"]
    assert s.sender.resyncs("a") == []
    assert s.fleet.resent == []
    assert s.gaps.running == []


async def test_where_history_no_longer_reaches_the_members_are_told_to_resync() -> None:
    s = Setup()
    s.member("a", ORG, CHANNEL)
    s.member("b", CHANNEL)
    s.member("map", "fleet:org:o1")
    s.delivery.deliver("o1", s.published(1, CHANNEL))
    for n in range(2, 8):
        s.published(n, CHANNEL)
    s.streams.trim(CHANNEL, keep=2)  # 2..5 are gone
    s.gaps.request("o1", "reconnect")
    await s.settle()
    assert s.sender.ids("b") == ["e1", "e6", "e7"]  # what is left, then told
    assert s.sender.resyncs("b") == [
        {"rooms": ["channel:c1"], "reason": "history_gap", "recovered": False}
    ]
    assert s.sender.resyncs("a")[0]["rooms"] == ["channel:c1"]  # its org room is complete
    assert s.fleet.resent == ["map"]


async def test_a_quiet_room_recovers_from_when_it_opened_and_a_redis_reset_resyncs() -> None:
    s = Setup()
    s.member("a", ORG)
    s.gaps.request("o1", "gap")
    await s.settle()
    assert s.sender.resyncs("a") == []  # no stream: no events, nothing lost
    s.gaps.request("o1", "reset", lost=True)  # Redis lost its data: the org's history too
    await s.settle()
    assert s.sender.resyncs("a")[0]["reason"] == "redis_reset"


async def test_a_recovery_that_cannot_read_history_retries_then_resyncs_never_silently() -> None:
    s = Setup()
    s.member("a", ORG)
    s.delivery.deliver("o1", s.published(1, ORG))
    s.streams.fail = 10
    s.gaps.request("o1", "gap")
    await s.settle()
    assert len(s.streams.reads) == 3  # the first try and two retries
    assert s.sender.resyncs("a")[0]["reason"] == "recovery_failed"
    s.delivery.deliver("o1", s.event(2, ORG))  # live delivery was never left paused
    assert s.sender.ids("a") == ["e1", "e2"]


async def test_the_watch_sees_a_missing_number_and_a_count_that_starts_again() -> None:
    s = Setup()
    s.member("a", ORG)
    asked: list[tuple[str, str, bool]] = []

    def request(org: str, reason: str, *, lost: bool = False) -> None:
        asked.append((org, reason, lost))

    s.gaps.request = request  # type: ignore[method-assign]
    for seq in (1, 2, 4, 5):
        s.watch.observe("o1", seq)
    assert asked == [("o1", "gap", False)]
    s.watch.observe("o1", 1)
    assert asked[-1] == ("o1", "reset", True)
    s.watch.observe("o1", None)  # an unsequenced message (a tool's): no judgement
    assert len(asked) == 2


async def test_positioning_needs_the_count_ahead_twice_and_a_reconnect_compares_at_once() -> None:
    s = Setup()
    asked: list[tuple[str, str]] = []

    def request(org: str, reason: str, *, lost: bool = False) -> None:
        asked.append((org, reason))

    s.gaps.request = request  # type: ignore[method-assign]
    s.streams.counters["o1"] = 7
    s.watch.subscribed("o1")
    await s.settle()
    s.watch.position({"o1": 8})  # 8 may be on its way
    assert asked == []
    s.watch.observe("o1", 8)
    s.watch.position({"o1": 9})
    s.watch.position({"o1": 9})  # ahead twice, nothing arrived: a gap
    assert asked == [("o1", "positioning")]
    s.streams.counters["o1"] = 12
    s.watch.connected(2)
    await s.settle()
    assert asked[-1] == ("o1", "reconnect")
