"""The whole path with real servers: Kafka -> consumer -> Redis -> gateway process -> clients.

Clients are python-socketio clients of a ``python -m fleetcast.gateway``
subprocess; events are produced with aiokafka and pass through the real
consumer. Checked: every type reaches exactly the rooms and roles it should
and never another org, order within a room, one delivery per client across
overlapping rooms, recovery with ``since``, and a gap reported as such.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from fleetcast.protocol import events, keys, routing
from tests.harness import redis as redis_harness
from tests.harness.gateway import SECRET, Client, GatewayProcess, make_token, wait_until
from tests.harness.kafka import KafkaTopics, consumer_settings, produce_events, running_consumer

pytestmark = pytest.mark.integration

WAIT_S = 30.0
IDS = {"channel_id": "ch-3", "incident_id": "inc-9", "asset_id": "u-7", "user_id": "usr-1"}
_serial = itertools.count()


def envelope(event_type: str, org: str, data: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "event_id": f"{org}-{event_type}-{next(_serial)}",
        "event_type": event_type,
        "organization_id": org,
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": dict(IDS) if data is None else data,
    }


@dataclass(frozen=True)
class Rig:
    """What each whole-path test uses: its topics, a producer, Redis, a log dir, clients."""

    topics: KafkaTopics
    producer: AIOKafkaProducer
    redis_url: str
    log_dir: Path
    clients: Callable[..., Client]

    def __iter__(self) -> Iterator[Any]:
        return iter((self.topics, self.producer, self.redis_url, self.log_dir, self.clients))


@pytest.fixture
def rig(
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    any_redis_url: str,
    tmp_path: Path,
    clients: Callable[..., Client],
) -> Rig:
    """On one Redis and on a Redis Cluster: every whole-path test runs on both."""
    return Rig(kafka_topics, kafka_producer, any_redis_url, tmp_path, clients)


@contextlib.asynccontextmanager
async def whole_path(
    topics: KafkaTopics, redis_url: str, log_dir: Path, **consumer: Any
) -> AsyncIterator[str]:
    """A consumer (in this loop) and a gateway process on one Redis; yields the gateway URL."""
    gateway = GatewayProcess(
        {"FLEETCAST_JWT_SECRET": SECRET, "FLEETCAST_REDIS_URL": redis_url}, log_dir
    ).start()
    try:
        async with running_consumer(consumer_settings(topics, redis_url, **consumer)):
            await gateway.wait_ready(within=60)
            yield gateway.url
    finally:
        gateway.stop()


def received(client: Client) -> list[dict[str, Any]]:
    """Delivered events (not session or other control events), in arrival order."""
    return [data for name, data in client.events if name in events.EVENT_TYPES]


async def wait_for_events(client: Client, count: int) -> list[dict[str, Any]]:
    await wait_until(lambda: len(received(client)) >= count, WAIT_S, f"{count} events")
    return received(client)


async def connect(
    make: Callable[..., Client], url: str, sub: str, org: str, roles: tuple[str, ...], **claims: Any
) -> Client:
    client = make(url)
    assert await client.connect(make_token(sub, org, roles, ttl=600, **claims))
    return client


async def subscribe(client: Client, *rooms: str) -> None:
    for room in rooms:
        ack = await client.call("subscribe", {"room": room})
        assert ack["ok"], ack


async def warm_up(
    producer: AIOKafkaProducer, topics: KafkaTopics, clients: Iterable[tuple[Client, str]]
) -> None:
    """One org-wide alert per org, awaited by every client: the gateway now listens."""
    pairs = list(clients)
    for org in sorted({org for _, org in pairs}):
        await produce_events(producer, topics, [envelope("alert_created", org, {})])
    for client, _ in pairs:
        await wait_for_events(client, 1)
        client.events.clear()


async def dispatcher_in(
    make: Callable[..., Client],
    url: str,
    producer: AIOKafkaProducer,
    topics: KafkaTopics,
    *rooms: str,
) -> Client:
    """A dispatcher of org-a in ``rooms``, once the gateway listens for org-a."""
    client = await connect(make, url, "disp-1", "org-a", ("dispatcher",))
    await subscribe(client, *rooms)
    await warm_up(producer, topics, [(client, "org-a")])
    return client


def expected_rooms(doc: dict[str, Any], client_rooms: set[str]) -> str | None:
    """The client-facing room an event reaches a client through, or None."""
    table = routing.RoutingTable.default()
    for room in routing.route(events.validate_envelope(doc), table):
        if room.name in client_rooms:
            return room.client_name
    return None


async def test_every_type_reaches_the_right_rooms_and_roles_and_never_another_org(
    rig: Rig,
) -> None:
    kafka_topics, kafka_producer, redis_url, tmp_path, clients = rig
    async with whole_path(kafka_topics, redis_url, tmp_path) as url:
        dispatcher = await connect(clients, url, "disp-1", "org-a", ("dispatcher",))
        await subscribe(dispatcher, "channel:ch-3", "incident:inc-9", "asset:u-7", "fleet")
        unit = await connect(
            clients, url, "usr-1", "org-a", ("field_unit",), channels=["ch-3"], assets=["u-7"]
        )
        await subscribe(unit, "channel:ch-3")
        # (the viewer stays out of the fleet room: positions may reach it batched there)
        viewer = await connect(clients, url, "view-1", "org-a", ("viewer",))
        refused = await viewer.call("subscribe", {"room": "incident:inc-9"})
        assert refused["ok"] is False
        outsider = await connect(clients, url, "disp-b", "org-b", ("dispatcher",))
        await subscribe(outsider, "channel:ch-3", "incident:inc-9", "asset:u-7")
        members: dict[str, tuple[Client, str, set[str]]] = {
            "dispatcher": (dispatcher, "org-a", {"org:org-a", "user:disp-1:org:org-a"}),
            "unit": (unit, "org-a", {"org:org-a", "user:usr-1:org:org-a"}),
            "viewer": (viewer, "org-a", {"org:org-a", "user:view-1:org:org-a"}),
            "outsider": (outsider, "org-b", {"org:org-b", "user:disp-b:org:org-b"}),
        }
        members["dispatcher"][2].update(
            f"{room}:org:org-a" for room in ("channel:ch-3", "incident:inc-9", "asset:u-7")
        )
        members["dispatcher"][2].add("fleet:org:org-a")
        members["unit"][2].add("channel:ch-3:org:org-a")
        members["outsider"][2].update(
            f"{room}:org:org-b" for room in ("channel:ch-3", "incident:inc-9", "asset:u-7")
        )
        await warm_up(kafka_producer, kafka_topics, [(c, org) for c, org, _ in members.values()])

        sent = [envelope(t, org) for org in ("org-a", "org-c") for t in sorted(events.EVENT_TYPES)]
        await produce_events(kafka_producer, kafka_topics, sent)
        for name, (client, org, rooms) in members.items():
            expected = {
                doc["event_id"]: room
                for doc in sent
                if doc["organization_id"] == org and (room := expected_rooms(doc, rooms))
            }
            got = await wait_for_events(client, len(expected))
            by_id = {data["event_id"]: data for data in got}
            assert len(by_id) == len(got), f"{name} got an event twice"
            assert {i: d["room"] for i, d in by_id.items()} == expected, name
            for data in got:
                assert data["organization_id"] == org
                assert ("offset" in data) is (data["room"] != "fleet"), data
        # a marker produced last: once every client has it, nothing else is on its way
        await produce_events(kafka_producer, kafka_topics, [envelope("alert_created", "org-b", {})])
        await wait_for_events(outsider, 1)
    # org-b's client saw only its own marker; org-c's events reached nobody
    assert [e["organization_id"] for e in received(outsider)] == ["org-b"]
    assert {e["event_type"] for e in received(dispatcher)} == set(events.EVENT_TYPES)


async def test_order_within_a_room_and_one_delivery_across_overlapping_rooms(rig: Rig) -> None:
    kafka_topics, kafka_producer, redis_url, tmp_path, clients = rig
    async with whole_path(kafka_topics, redis_url, tmp_path, batch_max=17) as url:
        client = await dispatcher_in(
            clients, url, kafka_producer, kafka_topics, "channel:ch-1", "incident:inc-1"
        )
        data = {"incident_id": "inc-1", "channel_id": "ch-1"}
        sent = [envelope("incident_updated", "org-a", data) for _ in range(200)]
        await produce_events(kafka_producer, kafka_topics, sent)
        got = await wait_for_events(client, len(sent))
    assert [d["event_id"] for d in got] == [d["event_id"] for d in sent]
    assert {d["room"] for d in got} == {"channel:ch-1"}  # first target room in routing order
    offsets = [tuple(map(int, d["offset"].split("-"))) for d in got]
    assert offsets == sorted(offsets)


async def test_recovery_with_since_delivers_what_was_missed_in_order(rig: Rig) -> None:
    kafka_topics, kafka_producer, redis_url, tmp_path, clients = rig
    data = {"incident_id": "inc-2"}
    first = [envelope("incident_updated", "org-a", data) for _ in range(30)]
    missed = [envelope("incident_updated", "org-a", data) for _ in range(40)]
    later = [envelope("incident_updated", "org-a", data) for _ in range(10)]
    async with whole_path(kafka_topics, redis_url, tmp_path) as url:
        before = await dispatcher_in(clients, url, kafka_producer, kafka_topics, "incident:inc-2")
        await produce_events(kafka_producer, kafka_topics, first)
        last_offset = (await wait_for_events(before, len(first)))[-1]["offset"]
        await before.close()
        await produce_events(kafka_producer, kafka_topics, missed)
        await wait_in_history(redis_url, "incident:inc-2:org:org-a", len(first) + len(missed))
        after = await connect(clients, url, "disp-1", "org-a", ("dispatcher",))
        ack = await after.call("subscribe", {"room": "incident:inc-2", "since": last_offset})
        assert ack == {"ok": True, "room": "incident:inc-2", "recovered": True}
        await produce_events(kafka_producer, kafka_topics, later)
        got = await wait_for_events(after, len(missed) + len(later))
    assert [d["event_id"] for d in got] == [d["event_id"] for d in missed + later]


async def test_a_gap_past_the_history_is_reported(rig: Rig) -> None:
    kafka_topics, kafka_producer, redis_url, tmp_path, clients = rig
    data = {"incident_id": "inc-3"}
    async with whole_path(kafka_topics, redis_url, tmp_path, history_maxlen=10) as url:
        before = await dispatcher_in(clients, url, kafka_producer, kafka_topics, "incident:inc-3")
        await produce_events(
            kafka_producer, kafka_topics, [envelope("incident_updated", "org-a", data)]
        )
        first_offset = (await wait_for_events(before, 1))[0]["offset"]
        await before.close()
        flood = [envelope("incident_updated", "org-a", data) for _ in range(1000)]
        await produce_events(kafka_producer, kafka_topics, flood)
        await wait_in_history(
            redis_url, "incident:inc-3:org:org-a", None, last=flood[-1]["event_id"]
        )
        after = await connect(clients, url, "disp-1", "org-a", ("dispatcher",))
        ack = await after.call("subscribe", {"room": "incident:inc-3", "since": first_offset})
    assert ack == {"ok": True, "room": "incident:inc-3", "recovered": False}


async def wait_in_history(
    redis_url: str, room: str, count: int | None = None, last: str | None = None
) -> None:
    """Until the room's history holds ``count`` entries and ends with event ``last``."""
    redis: Any = redis_harness.client(redis_url)  # Any: redis-py's reply types are unions
    stream = keys.history_stream(room)
    deadline = time.monotonic() + WAIT_S
    try:
        while True:
            length = await redis.xlen(stream)
            tail = await redis.xrevrange(stream, count=1)
            newest = orjson.loads(tail[0][1][keys.HISTORY_FIELD.encode()]) if tail else {}
            if (count is None or length >= count) and (
                last is None or newest.get("event_id") == last
            ):
                return
            assert time.monotonic() < deadline, f"history of {room}: {length} entries"
            await asyncio.sleep(0.05)
    finally:
        await redis.aclose()


async def snapshot(client: Client, kind: str) -> dict[str, Any]:
    name = f"{kind}_snapshot"
    await wait_until(lambda: any(n == name for n, _ in client.events), WAIT_S, name)
    return next(data for n, data in client.events if n == name)


async def test_a_console_opened_after_50_incident_events_sees_exactly_the_open_ones(
    rig: Rig,
) -> None:
    kafka_topics, kafka_producer, redis_url, tmp_path, clients = rig
    async with whole_path(kafka_topics, redis_url, tmp_path) as url:
        witness = await dispatcher_in(clients, url, kafka_producer, kafka_topics)
        sent, open_ = [], set()
        for n in range(50):
            incident = f"inc-{n % 13}"
            if incident in open_ and n % 3 == 0:
                data = {"incident_id": incident, "status": "closed"}
                sent.append(envelope("incident_status_changed", "org-a", data))
                open_.discard(incident)
            elif incident in open_:
                data = {"incident_id": incident, "status": "on_scene"}
                sent.append(envelope("incident_status_changed", "org-a", data))
            else:
                sent.append(envelope("incident_created", "org-a", {"incident_id": incident}))
                open_.add(incident)
        sent += [
            envelope("alert_created", "org-a", {"alert_id": "al-1", "severity": "critical"}),
            envelope("alert_created", "org-a", {"alert_id": "al-2"}),
            envelope("alert_acknowledged", "org-a", {"alert_id": "al-2"}),
            envelope("task_assigned", "org-a", {"task_id": "tk-1", "user_id": "usr-1"}),
        ]
        await produce_events(kafka_producer, kafka_topics, sent)
        await wait_for_events(witness, len(sent) - 1)  # (the task goes to usr-1 only)
        console = clients(url)
        token = make_token("disp-2", "org-a", ("dispatcher",), ttl=600)
        assert await console.connect(auth={"token": token, "state": True})
        incidents = await snapshot(console, "incidents")
        assert {i["incident_id"] for i in incidents["data"]["incidents"]} == open_
        assert incidents["data"]["complete"] is True
        alerts = await snapshot(console, "alerts")
        assert [a["alert_id"] for a in alerts["data"]["alerts"]] == ["al-1"]
        unit = clients(url)
        token = make_token("usr-1", "org-a", ("field_unit",), ttl=600)
        assert await unit.connect(auth={"token": token, "state": True})
        tasks = await snapshot(unit, "tasks")
        assert [t["task_id"] for t in tasks["data"]["tasks"]] == ["tk-1"]


async def test_a_unit_back_after_its_history_moved_on_gets_its_open_tasks(rig: Rig) -> None:
    """A long dead zone: the user room's history no longer reaches back, the tasks still do."""
    kafka_topics, kafka_producer, redis_url, tmp_path, clients = rig
    async with whole_path(kafka_topics, redis_url, tmp_path, history_maxlen=10) as url:
        unit = await connect(clients, url, "usr-1", "org-a", ("field_unit",))
        await produce_events(
            kafka_producer,
            kafka_topics,
            [envelope("task_assigned", "org-a", {"task_id": "tk-0", "user_id": "usr-1"})],
        )
        since = (await wait_for_events(unit, 1))[0]["offset"]
        await unit.close()
        while_away = []
        for n in range(1, 31):  # 30 tasks: every third one still open at the end
            task = {"task_id": f"tk-{n}", "user_id": "usr-1"}
            while_away.append(envelope("task_assigned", "org-a", task))
            if n % 3:
                while_away.append(envelope("task_completed", "org-a", task))
        await produce_events(kafka_producer, kafka_topics, while_away)
        await wait_in_history(
            redis_url, "user:usr-1:org:org-a", None, last=while_away[-1]["event_id"]
        )
        back = clients(url)
        token = make_token("usr-1", "org-a", ("field_unit",), ttl=600)
        assert await back.connect(auth={"token": token, "since": {"user:usr-1": since}})
        [session] = await back.wait_for("session")
        assert session["recovered"]["user:usr-1"] is False
        tasks = await snapshot(back, "tasks")
    open_tasks = {"tk-0"} | {f"tk-{n}" for n in range(3, 31, 3)}
    assert {t["task_id"] for t in tasks["data"]["tasks"]} == open_tasks


async def test_a_unit_back_after_its_rooms_expired_gets_its_tasks_in_order_and_active_alerts(
    rig: Rig,
) -> None:
    """Offline longer than room history lives: tasks from the inbox, alerts from the state."""
    kafka_topics, kafka_producer, redis_url, tmp_path, clients = rig
    async with whole_path(kafka_topics, redis_url, tmp_path, history_ttl_s=2) as url:
        unit = await connect(clients, url, "usr-1", "org-a", ("field_unit",))
        await warm_up(kafka_producer, kafka_topics, [(unit, "org-a")])
        first = envelope("task_assigned", "org-a", {"task_id": "tk-0", "user_id": "usr-1"})
        await produce_events(kafka_producer, kafka_topics, [first])
        [got] = await wait_for_events(unit, 1)
        user_since = got["offset"]
        org_since = await unit_org_offset(redis_url)  # the warm-up alert's
        await unit.close()
        missed = [
            envelope("task_assigned", "org-a", {"task_id": f"tk-{n}", "user_id": "usr-1"})
            for n in range(1, 6)
        ]
        alerts = [
            envelope("alert_created", "org-a", {"alert_id": "al-1"}),
            envelope("alert_created", "org-a", {"alert_id": "al-2"}),
            envelope("alert_acknowledged", "org-a", {"alert_id": "al-1"}),
        ]
        await produce_events(kafka_producer, kafka_topics, missed + alerts)
        await wait_in_history(redis_url, "org:org-a", None, last=alerts[-1]["event_id"])
        org_stream = keys.history_stream("org:org-a")
        await wait_gone(redis_url, org_stream)  # 2 s of history TTL (+1 s slack) went by
        back = clients(url)
        token = make_token("usr-1", "org-a", ("field_unit",), ttl=600)
        since = {"user:usr-1": user_since, "org": org_since}
        assert await back.connect(auth={"token": token, "since": since})
        [session] = await back.wait_for("session")
        assert session["recovered"] == {"user:usr-1": True, "org": False}
        tasks = await wait_for_events(back, len(missed))
        active = await snapshot(back, "alerts")
    assert [t["event_id"] for t in tasks] == [m["event_id"] for m in missed]
    assert [a["alert_id"] for a in active["data"]["alerts"]] == ["al-2"]


async def unit_org_offset(redis_url: str) -> str:
    """The org room's newest offset."""
    redis: Any = redis_harness.client(redis_url)
    try:
        [(entry, _fields)] = await redis.xrevrange(keys.history_stream("org:org-a"), count=1)
        return str(entry.decode())
    finally:
        await redis.aclose()


async def wait_gone(redis_url: str, key: str) -> None:
    redis: Any = redis_harness.client(redis_url)
    deadline = time.monotonic() + WAIT_S
    try:
        while await redis.exists(key):
            assert time.monotonic() < deadline, f"{key} never expired"
            await asyncio.sleep(0.2)
    finally:
        await redis.aclose()


def offset_key(offset: str) -> tuple[int, int]:
    ms, _, seq = offset.partition("-")
    return int(ms), int(seq)


async def test_snapshot_then_live_under_a_steady_rate_misses_and_doubles_nothing(
    rig: Rig,
) -> None:
    kafka_topics, kafka_producer, redis_url, tmp_path, clients = rig
    sent: list[dict[str, Any]] = []
    async with whole_path(kafka_topics, redis_url, tmp_path) as url:
        witness = await dispatcher_in(clients, url, kafka_producer, kafka_topics)

        async def stream(count: int) -> None:  # ~50 events/s, incidents opening and closing
            for n in range(count):
                incident = f"inc-{n % 17}"
                if n % 4 == 3:
                    data = {"incident_id": incident, "status": "closed"}
                    doc = envelope("incident_status_changed", "org-a", data)
                else:
                    doc = envelope("incident_created", "org-a", {"incident_id": incident})
                sent.append(doc)
                await produce_events(kafka_producer, kafka_topics, [doc])
                await asyncio.sleep(0.02)

        producing = asyncio.create_task(stream(300))
        await asyncio.sleep(2.0)  # mid-stream
        console = clients(url)
        token = make_token("disp-2", "org-a", ("dispatcher",), ttl=600)
        assert await console.connect(auth={"token": token, "state": True})
        await producing
        await wait_for_events(witness, len(sent))
        taken = await snapshot(console, "incidents")
        live = [e for e in received(console) if e["event_type"].startswith("incident_")]
        await wait_until(
            lambda: (
                len(live)
                >= sum(
                    1
                    for e in received(witness)
                    if offset_key(e["offset"]) > offset_key(taken["offset"])
                )
            ),
            WAIT_S,
        )
        live = [e for e in received(console) if e["event_type"].startswith("incident_")]
    after = [e for e in received(witness) if offset_key(e["offset"]) > offset_key(taken["offset"])]
    assert [e["event_id"] for e in live] == [
        e["event_id"] for e in after
    ]  # none missed, none twice
    assert 0 < len(after) < len(sent)  # the console came in mid-stream
    open_ = {i["incident_id"] for i in taken["data"]["incidents"]}
    for event in live:
        incident = event["data"]["incident_id"]
        if event["data"].get("status") == "closed":
            open_.discard(incident)
        else:
            open_.add(incident)
    final: set[str] = set()
    for doc in sent:
        (final.discard if doc["data"].get("status") == "closed" else final.add)(
            doc["data"]["incident_id"]
        )
    assert open_ == final
