"""State snapshots (rooms/state.py): served first, as of their room's offset, then live events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

import orjson

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms import state
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.rooms.replay import Replays
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol.wire import RoutedEvent
from tests.unit.streams_fake import FakeStreams, envelope, off

ORG = "org:o1"


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, Any]]] = []

    def push(self, conn: Connection, frame: Frame) -> None:
        name, payload = json.loads(frame.text[1:])
        self.sent.append((name, payload))


class Source:
    """Org state as of off(2); live events race the read."""

    def __init__(self, during: Any = None) -> None:
        self.reads = 0
        self.during = during

    async def org_state(self, org: str) -> state.RawState:
        self.reads += 1
        if self.during is not None:
            self.during()
        await asyncio.sleep(0)
        incidents = {"i1": orjson.dumps({"incident_id": "i1", "status": "on_scene"})}
        alerts = {"a1": orjson.dumps({"alert_id": "a1"}), "bad": b"not json"}
        return state.RawState(off(2), {"incidents": incidents, "alerts": alerts})

    async def user_tasks(self, org: str, user: str) -> state.RawState:
        return state.RawState(None, {"tasks": {"t1": orjson.dumps({"task_id": "t1"})}})


class Setup:
    def __init__(self, during: Any = None) -> None:
        self.registry, self.recorder, metrics = Registry(), Recorder(), Metrics()
        self.delivery = Delivery(self.registry, self.recorder, metrics, max_held=100)
        self.conn = Connection("s", "e", "o1", "u1", 0.0, open=True)
        self.registry.add(self.conn)
        for room in (ORG, "user:u1:org:o1"):
            self.registry.join(self.conn, room)
        self.source = Source(during)
        self.tasks: list[asyncio.Task[Any]] = []
        replays = Replays(FakeStreams(), self.recorder, metrics)
        self.service = state.StateService(
            self.source, replays, metrics, spawn=self.spawn, max_items=10
        )

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(coro))

    def live(self, n: int) -> None:
        self.delivery.deliver("o1", RoutedEvent((ORG,), {ORG: off(n)}, envelope(f"l{n}")))


async def test_snapshots_come_first_and_live_events_after_their_offset_follow_once() -> None:
    s = Setup()

    def racing() -> None:  # l2 is in the state, l3 is not
        s.live(2)
        s.live(3)

    s.source.during = racing
    counts = await s.service.send(s.conn, state.KINDS)
    assert counts == {"incidents": 1, "alerts": 1, "tasks": 1}
    names = [name for name, _ in s.recorder.sent]
    assert names == ["incidents_snapshot", "alerts_snapshot", "incident_updated", "tasks_snapshot"]
    events = [p["event_id"] for name, p in s.recorder.sent if name == "incident_updated"]
    assert events == ["l3"]
    incidents = s.recorder.sent[0][1]
    assert incidents["offset"] == off(2)
    assert incidents["data"] == {
        "incidents": [{"incident_id": "i1", "status": "on_scene"}],
        "complete": True,
    }
    s.live(4)  # after the snapshot: live as usual
    assert [p["event_id"] for n, p in s.recorder.sent if n == "incident_updated"] == ["l3", "l4"]


async def test_consoles_asking_at_once_share_one_read() -> None:
    s = Setup()
    others = [Connection(f"c{n}", "e", "o1", f"u{n}", 0.0, open=True) for n in range(5)]
    for conn in others:
        s.registry.add(conn)
        s.registry.join(conn, ORG)
    await asyncio.gather(*(s.service.send(c, frozenset({"incidents"})) for c in others))
    assert s.source.reads <= 2


def test_what_a_client_asks_for() -> None:
    assert state.kinds_asked(True) == state.KINDS
    assert state.kinds_asked(["alerts", "nonsense"]) == {"alerts"}
    assert state.kinds_asked("yes") == frozenset()
