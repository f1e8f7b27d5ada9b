"""Delivery over real Redis and real clients: once per connection, order, recovery, gaps.

Events come in as the consumer sends them: a wire message PUBLISHed on the
org channel, history entries XADDed to each room's stream with the
HISTORY_FIELD; the delivery entry point is also called directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest

from fleetcast.protocol import keys, wire
from tests.harness import redis as redis_harness
from tests.harness.gateway import (
    Client,
    RunningGateway,
    gateway_settings,
    make_token,
    metric,
    scrape,
    start_gateway,
)

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]


def envelope(
    event_id: str, event_type: str = "incident_updated", org: str = "o1", **data: Any
) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": event_type, "organization_id": org,
            "occurred_at": "2026-11-25T18:00:00Z", "data": data}  # fmt: skip


@pytest.fixture
async def redis(any_redis_url: str) -> AsyncIterator[Any]:
    """One Redis or a cluster: every test here runs on both."""
    client = redis_harness.client(any_redis_url)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
async def gateway(any_redis_url: str) -> AsyncIterator[RunningGateway]:
    running = await start_gateway(gateway_settings(any_redis_url))
    try:
        yield running
    finally:
        await running.stop()


async def connected(factory: ClientFactory, url: str, token: str, *rooms: str) -> Client:
    client = factory(url)
    assert await client.connect(token)
    await client.wait_for("session")
    for room in rooms:
        assert (await client.call("subscribe", {"room": room}))["ok"], room
    return client


async def add_history(redis: Any, room: str, event: dict[str, Any]) -> str:
    """XADD as the consumer does; returns the entry id (the offset)."""
    entry_id = await redis.xadd(
        keys.history_stream(room), {keys.HISTORY_FIELD: orjson.dumps(event)}
    )
    return entry_id.decode() if isinstance(entry_id, bytes) else entry_id


async def publish(redis: Any, org: str, *items: wire.RoutedEvent) -> None:
    receivers = await redis_harness.publish(
        redis, keys.org_channel(org), wire.encode(org, list(items))
    )
    assert receivers >= 1


async def test_once_per_connection_across_overlapping_rooms(
    gateway: RunningGateway, clients: ClientFactory, redis: Any
) -> None:
    url = gateway.url
    both = await connected(clients, url, make_token("a"), "channel:c1", "incident:i1")
    incident_only = await connected(clients, url, make_token("b"), "incident:i1")
    org_only = await connected(clients, url, make_token("c"))
    other_org = await connected(clients, url, make_token("d", "o2"), "channel:c1", "incident:i1")
    routed = wire.RoutedEvent(
        ("channel:c1:org:o1", "incident:i1:org:o1", "org:o1"),
        {"channel:c1:org:o1": "10-0", "incident:i1:org:o1": "11-0", "org:o1": "12-0"},
        envelope("ev1", "incident_created", channel_id="c1", incident_id="i1"),
    )
    await publish(redis, "o1", routed)
    [a] = await both.wait_for("incident_created")
    [b] = await incident_only.wait_for("incident_created")
    [c] = await org_only.wait_for("incident_created")
    assert (a["room"], a["offset"]) == ("channel:c1", "10-0")
    assert (b["room"], b["offset"]) == ("incident:i1", "11-0")
    assert (c["room"], c["offset"]) == ("org", "12-0")
    assert {k: a[k] for k in routed.event} == routed.event
    # and the entry point called directly, as the consumer wiring does
    gateway.gateway.delivery.deliver("o1", routed)
    await both.wait_for("incident_created", 2)
    await asyncio.sleep(0.2)
    for client in (both, incident_only, org_only):
        assert len(client.received("incident_created")) == 2
    assert other_org.received("incident_created") == []


async def test_order_within_a_room(
    gateway: RunningGateway, clients: ClientFactory, redis: Any
) -> None:
    client = await connected(clients, gateway.url, make_token(), "channel:c1")
    room = "channel:c1:org:o1"
    for batch in range(5):
        items = [
            wire.RoutedEvent((room,), {room: f"{batch * 10 + i}-0"}, envelope(f"e{batch}-{i}"))
            for i in range(10)
        ]
        await publish(redis, "o1", *items)
    got = await client.wait_for("incident_updated", 50)
    assert [g["offset"] for g in got] == [f"{n}-0" for n in range(50)]
    samples = await scrape(gateway.url)
    assert metric(samples, "fleetcast_gateway_events_total") == 50
    assert metric(samples, "fleetcast_gateway_deliveries_total") == 50
    latency = "fleetcast_gateway_delivery_latency_seconds_count"
    assert metric(samples, latency, category="priority") == 50
    assert metric(samples, latency, category="position") == 0
    assert metric(samples, "fleetcast_gateway_redis_messages_total", org="o1") == 5


async def test_recovery_with_since_then_live(
    gateway: RunningGateway, clients: ClientFactory, redis: Any
) -> None:
    room = "channel:c1:org:o1"
    ids = [await add_history(redis, room, envelope(f"h{i}")) for i in range(5)]
    client = await connected(clients, gateway.url, make_token())
    ack = await client.call("subscribe", {"room": "channel:c1", "since": ids[1]})
    assert ack == {"ok": True, "room": "channel:c1", "recovered": True}
    got = await client.wait_for("incident_updated", 3)
    assert [(g["event_id"], g["offset"], g["room"]) for g in got] == [
        (f"h{i}", ids[i], "channel:c1") for i in (2, 3, 4)
    ]
    await publish(
        redis, "o1", wire.RoutedEvent((room,), {room: "9999999999999-0"}, envelope("live"))
    )
    got = await client.wait_for("incident_updated", 4)
    assert got[-1]["event_id"] == "live"
    samples = await scrape(gateway.url)
    assert metric(samples, "fleetcast_gateway_recoveries_total", result="complete") == 1


async def test_since_at_the_end_recovers_nothing(
    gateway: RunningGateway, clients: ClientFactory, redis: Any
) -> None:
    last = await add_history(redis, "org:o1", envelope("only"))
    client = await connected(clients, gateway.url, make_token())
    ack = await client.call("subscribe", {"room": "org", "since": last})
    assert ack["recovered"] is True
    await asyncio.sleep(0.1)
    assert client.received("incident_updated") == []


async def test_gap_is_reported(gateway: RunningGateway, clients: ClientFactory, redis: Any) -> None:
    ids = [await add_history(redis, "incident:i1:org:o1", envelope(f"g{i}")) for i in range(6)]
    await redis.xtrim(keys.history_stream("incident:i1:org:o1"), maxlen=2, approximate=False)
    client = await connected(clients, gateway.url, make_token())
    ack = await client.call("subscribe", {"room": "incident:i1", "since": ids[1]})
    assert ack == {"ok": True, "room": "incident:i1", "recovered": False}
    got = await client.wait_for("incident_updated", 2)
    assert [g["event_id"] for g in got] == ["g4", "g5"]
    gone = await client.call("subscribe", {"room": "channel:nohistory", "since": ids[1]})
    assert gone["recovered"] is False
    for not_ours in ("yesterday", "1-0", "99999999999999999-0"):
        bad = await client.call("subscribe", {"room": "channel:c1", "since": not_ours})
        assert bad["error"]["code"] == "invalid_offset"


async def test_unsubscribed_gateway_drops_other_org_messages(
    gateway: RunningGateway, clients: ClientFactory, redis: Any
) -> None:
    """A message whose org does not match its channel is refused (defence in depth)."""
    client = await connected(clients, gateway.url, make_token(), "channel:c1")
    forged = wire.encode(
        "o2", [wire.RoutedEvent(("channel:c1:org:o1",), {}, envelope("x", org="o2"))]
    )
    await redis_harness.publish(redis, keys.org_channel("o1"), forged)
    await redis_harness.publish(redis, keys.org_channel("o1"), b"not json")
    samples: dict[Any, float] = {}
    for _ in range(100):
        samples = await scrape(gateway.url)
        if metric(samples, "fleetcast_gateway_wire_errors_total") >= 2:
            break
        await asyncio.sleep(0.02)
    assert metric(samples, "fleetcast_gateway_wire_errors_total") == 2
    assert client.received("incident_updated") == []


async def test_recovery_of_automatic_rooms_at_connect(
    gateway: RunningGateway, clients: ClientFactory, redis: Any
) -> None:
    """auth {"since": {...}} recovers the rooms it names from the moment they are joined."""
    org_ids = [await add_history(redis, "org:o1", envelope(f"o{i}")) for i in range(3)]
    user_ids = [await add_history(redis, "user:me:org:o1", envelope(f"u{i}")) for i in range(2)]
    client = clients(gateway.url)
    since = {"org": org_ids[0], "user:me": user_ids[1], "channel:c1": org_ids[0]}
    assert await client.connect(auth={"token": make_token("me"), "since": since})
    [session] = await client.wait_for("session")
    # channel:c1 has no history at all: joined, and reported as not recovered
    assert session["recovered"] == {"org": True, "user:me": True, "channel:c1": False}
    assert "channel:c1" in session["rooms"]
    got = await client.wait_for("incident_updated", 2)
    assert client.events[0][0] == "session"
    assert [(g["event_id"], g["room"]) for g in got] == [("o1", "org"), ("o2", "org")]
