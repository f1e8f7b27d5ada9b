"""Redis faults: CLIENT KILL, Redis stopped and restarted, Redis down at start.

Connected clients keep being served throughout; /ready is false while the
Redis path is broken; subscriptions and session records come back by
themselves, and delivery resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from fleetcast.devtools.ports import free_port
from fleetcast.devtools.redis import RedisServer
from fleetcast.gateway.redis.listener import Listener
from fleetcast.protocol import keys, wire
from tests.harness.gateway import (
    Client,
    RunningGateway,
    gateway_settings,
    get_json,
    make_token,
    metric,
    scrape,
    start_gateway,
    wait_until,
)

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]


def alert(n: int) -> bytes:
    event = {"event_id": f"a{n}", "event_type": "alert_created", "organization_id": "o1",
             "occurred_at": "2026-11-25T18:00:00Z", "data": {}}  # fmt: skip
    return wire.encode("o1", [wire.RoutedEvent(("org:o1",), {}, event)])


async def publish_until_received(url: str, client: Client, n: int) -> None:
    """Publish alert n until it arrives (one sent mid-reconnect may be lost: that is pub/sub)."""
    async with aioredis.Redis.from_url(url) as redis:
        for _ in range(100):
            await redis.publish(keys.org_channel("o1"), alert(n))
            with contextlib.suppress(AssertionError):
                await client.wait_for(
                    "alert_created", len(client.received("alert_created")) + 1, 0.1
                )
            if any(e["event_id"] == f"a{n}" for e in client.received("alert_created")):
                return
    raise AssertionError(f"alert {n} never arrived")


@contextlib.asynccontextmanager
async def ready_watch(running: RunningGateway) -> AsyncIterator[list[bool]]:
    """Sample /ready every few ms while the block runs."""
    seen: list[bool] = []

    async def sample() -> None:
        while True:
            status, _ = await get_json(f"{running.url}/ready")
            seen.append(status == 200)
            await asyncio.sleep(0.005)

    task = asyncio.create_task(sample())
    try:
        yield seen
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def kill_gateway_connections(redis: aioredis.Redis, gateway_id: str) -> int:
    clients: list[dict[str, Any]] = await redis.client_list()
    ids = [c["id"] for c in clients if c.get("name") == f"fleetcast-gateway:{gateway_id}"]
    for client_id in ids:
        await redis.client_kill_filter(_id=client_id)
    return len(ids)


async def test_client_kill_then_delivery_resumes(redis_url: str, clients: ClientFactory) -> None:
    running = await start_gateway(gateway_settings(redis_url, gateway_id="gw-kill"))
    try:
        client = clients(running.url)
        assert await client.connect(make_token())
        await publish_until_received(redis_url, client, 0)
        async with ready_watch(running) as seen, aioredis.Redis.from_url(redis_url) as admin:
            await wait_until(lambda: len(seen) > 2, what="first /ready samples")
            assert await kill_gateway_connections(admin, "gw-kill") >= 1
            await wait_until(lambda: False in seen, what="/ready false after CLIENT KILL")
            await running.wait_ready(within=5)
            await wait_until(lambda: seen[-1] is True, what="/ready true again")
        assert client.sio.connected
        await publish_until_received(redis_url, client, 1)
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_redis_reconnects_total") >= 2
        assert metric(samples, "fleetcast_gateway_canary_ok") == 1
    finally:
        await running.stop()


async def test_redis_stopped_and_restarted(own_redis: RedisServer, clients: ClientFactory) -> None:
    running = await start_gateway(gateway_settings(own_redis.url, gateway_id="gw-restart"))
    try:
        client = clients(running.url)
        assert await client.connect(make_token())
        await publish_until_received(own_redis.url, client, 0)
        own_redis.stop()
        await running.wait_ready(False, within=5)
        assert (await get_json(f"{running.url}/health"))[0] == 200
        assert (await get_json(f"{running.url}/ready"))[0] == 503
        # still serving: subscribe works without Redis, and recovery reports the gap
        assert (await client.call("subscribe", {"room": "channel:c1"}))["ok"]
        ack = await client.call("subscribe", {"room": "channel:c2", "since": "1732550400000-0"})
        assert ack == {"ok": True, "room": "channel:c2", "recovered": False}
        status, stats = await get_json(f"{running.url}/stats")
        assert (status, stats["connections"], stats["cluster"]) == (200, 1, None)
        own_redis.start()
        await running.wait_ready(within=10)
        await publish_until_received(own_redis.url, client, 1)
        async with aioredis.Redis.from_url(own_redis.url) as redis:
            key = keys.session(client.sio.get_sid())
            for _ in range(200):
                if await redis.exists(key):
                    break
                await asyncio.sleep(0.02)
            assert await redis.exists(key), "session record restored after the restart"
            assert "channel:c2:org:o1" in str(await redis.hget(key, "rooms"))
    finally:
        await running.stop()


async def test_redis_down_at_start(clients: ClientFactory) -> None:
    port = free_port()
    url = f"redis://127.0.0.1:{port}/0"
    running = await start_gateway(gateway_settings(url, gateway_id="gw-late"), wait_ready=False)
    server = RedisServer(port)
    try:
        await asyncio.sleep(0.3)
        assert (await get_json(f"{running.url}/health"))[0] == 200
        assert (await get_json(f"{running.url}/ready"))[0] == 503
        client = clients(running.url)
        assert await client.connect(make_token())
        await client.wait_for("session")
        server.start()
        await running.wait_ready(within=10)
        await publish_until_received(url, client, 0)
    finally:
        await running.stop()
        server.cleanup()


async def test_silently_lost_subscriptions_are_caught_by_the_canary(
    redis_url: str, clients: ClientFactory
) -> None:
    """The known failure of peers: connected to Redis, subscribed to nothing, /health green.

    Dropping every subscription behind the listener's back (as a silent
    client-side reconnect would) must turn /ready false through the canary
    and rebuild the subscriptions.
    """
    running = await start_gateway(gateway_settings(redis_url, gateway_id="gw-deaf"))
    try:
        client = clients(running.url)
        assert await client.connect(make_token())
        await publish_until_received(redis_url, client, 0)
        fanout = running.gateway.listener
        assert isinstance(fanout, Listener)
        await fanout._pubsub.unsubscribe()  # deaf, yet the connection is fine
        await running.wait_ready(False, within=5)
        await running.wait_ready(within=5)
        await publish_until_received(redis_url, client, 1)
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_canary_failures_total") >= 1
    finally:
        await running.stop()
