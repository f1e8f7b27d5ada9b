"""Gap recovery with a real Redis: connected clients lose nothing, or are told.

Events go through the consumer's own publish script (numbered messages,
history streams), so what the gateway sees is what production sends. The
clients stay connected throughout: without gap recovery they would simply
never see what pub/sub lost while the gateway's subscriber was away.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

from fleetcast.consumer import processing
from fleetcast.devtools.redis import RedisServer
from fleetcast.protocol import events, keys, routing
from tests.harness import redis as redis_harness
from tests.harness.gateway import (
    Client,
    gateway_settings,
    make_token,
    metric,
    scrape,
    start_gateway,
    wait_until,
)

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]
ROUTER = processing.Router(routing.RoutingTable.default())


def routed(n: int, channel: str = "c1") -> processing.Routed:
    """Event n of org o1: an incident status change (channel, incident and org rooms)."""
    doc = {"event_id": f"e{n}", "event_type": "incident_status_changed", "organization_id": "o1",
           "occurred_at": "2026-11-25T18:00:00Z",
           "data": {"incident_id": "i1", "channel_id": channel, "status": f"s{n}"}}  # fmt: skip
    raw = orjson.dumps(doc)
    envelope = events.decode_envelope(raw)
    return processing.Routed(ROUTER.route(envelope), raw, "t", 0, n)


async def publish(redis: Any, *numbers: int) -> None:
    await redis_harness.publisher(redis).publish_events([routed(n) for n in numbers])


def ids(client: Client) -> list[str]:
    return [e["event_id"] for e in client.received("incident_status_changed")]


async def connected_client(clients: ClientFactory, url: str) -> Client:
    client = clients(url)
    assert await client.connect(make_token("u1"))
    await client.wait_for("session")
    ack = await client.call("subscribe", {"room": "channel:c1"})
    assert ack["ok"]
    return client


async def kill_pubsub(redis: Any) -> None:
    assert await redis_harness.kill_pubsub(redis) >= 1


async def test_events_published_while_the_subscriber_was_away_reach_connected_clients(
    any_redis_url: str, clients: ClientFactory
) -> None:
    running = await start_gateway(gateway_settings(any_redis_url))
    try:
        client = await connected_client(clients, running.url)
        async with redis_harness.client(any_redis_url) as redis:
            await publish(redis, 1)
            await client.wait_for("incident_status_changed", 1)
            await kill_pubsub(redis)
            await publish(redis, 2, 3)  # while the listener reconnects: pub/sub loses these
            await publish(redis, 4)
            await client.wait_for("incident_status_changed", 4, 10)
            await asyncio.sleep(0.3)
        assert ids(client) == ["e1", "e2", "e3", "e4"]  # all of them, once, in order
        assert client.sio.connected  # nobody had to reconnect
        assert client.received("resync") == []
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_gap_recovered_events_total") >= 1
    finally:
        await running.stop()


async def test_a_message_lost_without_a_reconnect_is_seen_by_its_number(
    any_redis_url: str, clients: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message that never arrived (the counter moved, pub/sub said nothing): the next shows it."""
    running = await start_gateway(gateway_settings(any_redis_url, position_check_s=60))
    try:
        client = await connected_client(clients, running.url)
        async with redis_harness.client(any_redis_url) as redis:
            await publish(redis, 1)
            await client.wait_for("incident_status_changed", 1)
            await lose_next_message(monkeypatch, lambda: publish(redis, 2))
            await publish(redis, 3)
            await client.wait_for("incident_status_changed", 3, 10)
        assert ids(client) == ["e1", "e2", "e3"]
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_pubsub_gaps_total", reason="gap") == 1
    finally:
        await running.stop()


async def test_a_lost_last_message_is_found_by_positioning(
    any_redis_url: str, clients: ClientFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = await start_gateway(gateway_settings(any_redis_url, position_check_s=0.2))
    try:
        client = await connected_client(clients, running.url)
        async with redis_harness.client(any_redis_url) as redis:
            await publish(redis, 1)
            await client.wait_for("incident_status_changed", 1)
            await lose_next_message(monkeypatch, lambda: publish(redis, 2))  # nothing after
            await client.wait_for("incident_status_changed", 2, 10)
        assert ids(client) == ["e1", "e2"]
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_pubsub_gaps_total", reason="positioning") == 1
    finally:
        await running.stop()


async def lose_next_message(
    monkeypatch: pytest.MonkeyPatch, publish_one: Callable[[], Awaitable[None]]
) -> None:
    """Publish one batch whose message nobody receives (numbered and kept in history as usual).

    The consumer's script publishes on the channel the encoder names; for this
    one call it names a channel nobody listens to, so exactly one message is
    lost without touching the gateway or its connection.
    """
    with monkeypatch.context() as patched:
        # in the org's slot (a cluster checks the script's keys), yet not its channel
        patched.setattr(keys, "org_channel", lambda org: f"fleetcast:{{{org}}}:nobody-listens")
        await publish_one()


async def test_a_redis_that_lost_its_data_tells_connected_clients_to_resync(
    own_redis: RedisServer, clients: ClientFactory
) -> None:
    running = await start_gateway(gateway_settings(own_redis.url))
    try:
        client = await connected_client(clients, running.url)
        async with aioredis.Redis.from_url(own_redis.url) as redis:
            await publish(redis, 1)
        await client.wait_for("incident_status_changed", 1)
        own_redis.restart()  # no persistence: everything is gone
        await running.wait_ready(within=10)
        [resync] = await client.wait_for("resync", 1, 10)
        assert resync["recovered"] is False
        assert resync["reason"] == "redis_reset"
        assert set(resync["rooms"]) >= {"channel:c1"}
        async with aioredis.Redis.from_url(own_redis.url) as redis:
            await publish(redis, 2)  # and delivery goes on
        await client.wait_for("incident_status_changed", 2, 10)
        assert client.sio.connected
    finally:
        await running.stop()


async def test_the_canary_never_drops_a_connection_that_replaced_the_one_it_probed(
    own_redis: RedisServer, clients: ClientFactory
) -> None:
    """After Redis comes back, the gateway stays on the new connection (no stale canary loss)."""
    running = await start_gateway(gateway_settings(own_redis.url))
    try:
        own_redis.restart()

        async def reconnects() -> float:
            return metric(await scrape(running.url), "fleetcast_gateway_redis_reconnects_total")

        for _ in range(100):
            if await reconnects() >= 2 and running.gateway.ready:
                break
            await asyncio.sleep(0.1)
        first = await reconnects()
        assert first == 2  # the first connection that came back was kept
        await asyncio.sleep(3 * running.gateway.settings.canary_interval_s)
        assert await reconnects() == first
        await wait_until(lambda: running.gateway.ready, what="ready")
    finally:
        await running.stop()
