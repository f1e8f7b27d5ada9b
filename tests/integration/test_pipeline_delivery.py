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
