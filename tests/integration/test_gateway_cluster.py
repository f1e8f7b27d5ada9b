"""Two gateways behind one Redis: per-org subscriptions, sessions and cluster stats."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import orjson
import pytest
import redis.asyncio as aioredis

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


@pytest.fixture
async def pair(redis_url: str) -> AsyncIterator[tuple[RunningGateway, RunningGateway]]:
    one = await start_gateway(gateway_settings(redis_url, gateway_id="gw-one"))
    two = await start_gateway(gateway_settings(redis_url, gateway_id="gw-two"))
    try:
        yield one, two
    finally:
        await one.stop()
        await two.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def org_event(org: str, n: int) -> bytes:
    event = {"event_id": f"{org}-{n}", "event_type": "alert_created", "organization_id": org,
             "occurred_at": "2026-11-25T18:00:00Z", "data": {}}  # fmt: skip
    return wire.encode(org, [wire.RoutedEvent((f"org:{org}",), {}, event)])


async def connected(factory: ClientFactory, url: str, token: str) -> Client:
    client = factory(url)
    assert await client.connect(token)
    await client.wait_for("session")
    return client


def text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def redis_messages(samples: dict[Any, float], org: str) -> float:
    return metric(samples, "fleetcast_gateway_redis_messages_total", org=org)


async def test_gateways_read_only_the_orgs_they_serve(
    pair: tuple[RunningGateway, RunningGateway], clients: ClientFactory, redis: aioredis.Redis
) -> None:
    one, two = pair
    x_on_one = await connected(clients, one.url, make_token("a", "org-x"))
    x_on_two = await connected(clients, two.url, make_token("b", "org-x"))
    y_on_one = await connected(clients, one.url, make_token("c", "org-y"))
    for n in range(5):
        await redis.publish(keys.org_channel("org-x"), org_event("org-x", n))
        await redis.publish(keys.org_channel("org-y"), org_event("org-y", n))
    await x_on_one.wait_for("alert_created", 5)
    await x_on_two.wait_for("alert_created", 5)
    await y_on_one.wait_for("alert_created", 5)
    samples_one, samples_two = await scrape(one.url), await scrape(two.url)
    assert redis_messages(samples_one, "org-x") == 5
    assert redis_messages(samples_one, "org-y") == 5
    assert redis_messages(samples_two, "org-x") == 5
    assert (
        redis_messages(samples_two, "org-y") == 0
    )  # no client of org-y there: none of its traffic
    assert metric(samples_two, "fleetcast_gateway_subscribed_orgs") == 1
    assert [e["event_id"] for e in x_on_two.received("alert_created")] == [
        f"org-x-{n}" for n in range(5)
    ]

    # the last org-x client leaves gateway two: it unsubscribes
    await x_on_two.close()
    await wait_until(lambda: two.gateway.listener.orgs == [], what="two drops org-x")
    numsub = dict(await redis.pubsub_numsub(keys.org_channel("org-x")))
    assert numsub[keys.org_channel("org-x").encode()] == 1
    await redis.publish(keys.org_channel("org-x"), org_event("org-x", 99))
    await x_on_one.wait_for("alert_created", 6)
    assert redis_messages(await scrape(two.url), "org-x") == 5


async def test_sessions_and_cluster_stats(
    pair: tuple[RunningGateway, RunningGateway], clients: ClientFactory, redis: aioredis.Redis
) -> None:
    one, two = pair
    first = await connected(clients, one.url, make_token("a", "org-x"))
    await connected(clients, one.url, make_token("b", "org-y"))
    await connected(clients, two.url, make_token("c", "org-x"))
    assert (await first.call("subscribe", {"room": "channel:c1"}))["ok"]
    sid = first.sio.get_sid()
    key = keys.session(sid)

    async def session_rooms() -> list[str]:
        raw = await redis.hget(key, "rooms")
        return orjson.loads(raw) if raw else []

    for _ in range(200):
        if "channel:c1:org:org-x" in await session_rooms():
            break
        await asyncio.sleep(0.02)
    record = {text(k): text(v) for k, v in (await redis.hgetall(key)).items()}
    assert record["user"] == "a"
    assert record["org"] == "org-x"
    assert record["gateway"] == "gw-one"
    assert float(record["connected_at"]) > 0
    assert await session_rooms() == ["channel:c1:org:org-x", "org:org-x", "user:a:org:org-x"]
    assert 0 < await redis.ttl(key) <= keys.SESSION_TTL_S

    async def cluster() -> dict[str, Any]:
        body: dict[str, Any] = (await get_json(f"{one.url}/stats"))[1]
        return body["cluster"]  # type: ignore[no-any-return]

    for _ in range(200):
        if (await cluster())["connections"] == 3:
            break
        await asyncio.sleep(0.02)
    stats = (await get_json(f"{one.url}/stats"))[1]
    assert stats["connections"] == 2
    assert stats["orgs"] == {"org-x": 1, "org-y": 1}
    assert stats["cluster"] == {
        "gateways": {"gw-one": 2, "gw-two": 1},
        "connections": 3,
        "orgs": {"org-x": 2, "org-y": 1},
    }
    await first.close()
    for _ in range(200):
        if not await redis.exists(key):
            break
        await asyncio.sleep(0.02)
    assert not await redis.exists(key)
