"""The fleet room on a real Redis: snapshot first, then one conflated batch per interval.

Events are written by the consumer's own publish script (history, fleet
snapshot, wire message), so the gateway reads exactly what it reads in
production; clients are python-socketio clients of an in-process gateway.
"""

from __future__ import annotations

import asyncio
import functools
import random
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from fleetcast.devtools.redis import RedisServer
from fleetcast.protocol import keys
from tests.harness.gateway import (
    Client,
    RunningGateway,
    gateway_settings,
    make_token,
    metric,
    scrape,
    start_gateway,
    wait_until,
)
from tests.integration.fleet_support import (
    ConsumerPath,
    alert,
    fleet_view,
    latest_by_asset,
    position,
    status,
)

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]
FLEET_EVENTS = ("fleet_snapshot", "asset_positions", "asset_position_updated")


@pytest.fixture
async def path(redis_url: str) -> AsyncIterator[ConsumerPath]:
    redis = aioredis.Redis.from_url(redis_url)
    try:
        yield ConsumerPath(redis)
    finally:
        await redis.aclose()


async def gateway_with(redis_url: str, **settings: Any) -> RunningGateway:
    return await start_gateway(gateway_settings(redis_url, **settings))


async def fleet_client(
    clients: ClientFactory, running: RunningGateway, user: str, org: str = "o1", *rooms: str
) -> tuple[Client, list[dict[str, Any]]]:
    client = clients(running.url)
    assert await client.connect(make_token(user, org))
    acks = [await client.call("subscribe", {"room": room}) for room in ("fleet", *rooms)]
    assert all(ack["ok"] for ack in acks), acks
    return client, acks


def fleet_events(client: Client) -> list[tuple[str, Any]]:
    return [(name, data) for name, data in client.events if name in FLEET_EVENTS]


async def test_snapshot_first_then_one_conflated_batch(
    redis_url: str, path: ConsumerPath, clients: ClientFactory
) -> None:
    running = await gateway_with(redis_url, fleet_batch_ms=200)
    try:
        await path.publish([position("o1", "a1", 1), position("o1", "a2", 1)])
        await path.publish([status("o1", "a1", "en_route")])
        client, (ack,) = await fleet_client(clients, running, "d1")
        assert ack["snapshot"] == {"assets": 2, "complete": True}
        (first, snapshot), *_ = fleet_events(client)
        assert first == "fleet_snapshot"
        assert snapshot["room"] == "fleet"
        assert snapshot["organization_id"] == "o1"
        assert {p["asset_id"]: p["seq"] for p in snapshot["data"]["positions"]} == {
            "a1": 1,
            "a2": 1,
        }
        assert [(s["asset_id"], s["status"]) for s in snapshot["data"]["statuses"]] == [
            ("a1", "en_route")
        ]
        assert all(p["occurred_at"] for p in snapshot["data"]["positions"])

        # one publish = one wire message = all inside one batch interval
        flood = [position("o1", "a1", seq) for seq in range(2, 12)]
        flood += [position("o1", "a3", seq) for seq in range(2, 5)]
        await path.publish(flood)
        (batch,) = await client.wait_for("asset_positions")
        assert batch["room"] == "fleet"
        assert batch["organization_id"] == "o1"
        entries = batch["data"]["positions"]
        assert sorted((p["asset_id"], p["seq"]) for p in entries) == [("a1", 11), ("a3", 4)]
        assert client.received("asset_position_updated") == []  # never one frame per position
        await asyncio.sleep(0.5)  # nothing moved: no more batches
        assert len(client.received("asset_positions")) == 1
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_fleet_conflated_positions_total") == 11
        assert metric(samples, "fleetcast_gateway_fleet_snapshots_total", result="complete") == 1
    finally:
        await running.stop()


async def test_asset_room_keeps_every_position(
    redis_url: str, path: ConsumerPath, clients: ClientFactory
) -> None:
    running = await gateway_with(redis_url, fleet_batch_ms=200)
    try:
        follower, _ = await fleet_client(clients, running, "d1", "o1", "asset:a1")
        field_unit = clients(running.url)
        assert await field_unit.connect(make_token("u7", "o1", ("field_unit",), assets=["a1"]))
        assert (await field_unit.call("subscribe", {"room": "asset:a1"}))["ok"]
        docs = [position("o1", "a1", seq) for seq in range(1, 9)]
        await path.publish(docs)
        for client in (follower, field_unit):
            singles = await client.wait_for("asset_position_updated", len(docs))
            assert [p["data"]["seq"] for p in singles] == list(range(1, 9))
            assert {p["room"] for p in singles} == {"asset:a1"}
        (batch,) = await follower.wait_for("asset_positions")
        assert [(p["asset_id"], p["seq"]) for p in batch["data"]["positions"]] == [("a1", 8)]
        await asyncio.sleep(0.4)
        assert field_unit.received("asset_positions") == []  # not in the fleet room
    finally:
        await running.stop()


async def test_status_goes_out_at_once(
    redis_url: str, path: ConsumerPath, clients: ClientFactory
) -> None:
    # a batch interval far longer than the test: anything that arrives was not batched
    running = await gateway_with(redis_url, fleet_batch_ms=60_000)
    try:
        viewer = clients(running.url)
        assert await viewer.connect(make_token("v1", "o1", ("viewer",)))
        assert (await viewer.call("subscribe", {"room": "fleet"}))["ok"]
        await path.publish([position("o1", "a1", 1), status("o1", "a1", "on_scene")])
        (changed,) = await viewer.wait_for("asset_status_changed")
        assert changed["data"] == {"asset_id": "a1", "status": "on_scene"}
        assert viewer.received("asset_positions") == []
        assert viewer.received("asset_position_updated") == []
    finally:
        await running.stop()


async def test_aged_out_assets_are_not_in_the_snapshot(
    redis_url: str, path: ConsumerPath, clients: ClientFactory
) -> None:
    running = await gateway_with(redis_url, fleet_asset_ttl_s=600, fleet_snapshot_max=3)
    try:
        await path.publish([position("o1", f"a{i}", 1) for i in range(5)])
        await path.publish([status("o1", "a0", "available"), status("o1", "a4", "available")])
        # a0 last reported 20 minutes ago (the org has been quiet since, so the
        # consumer has not aged it out yet); a1 is just inside the TTL
        now_ms = int(time.time() * 1000)
        await path.redis.zadd(
            keys.fleet_last_seen("o1"), {"a0": now_ms - 1_200_000, "a1": now_ms - 590_000}
        )
        # a hash entry without a last-seen score is not live either
        await path.redis.zrem(keys.fleet_last_seen("o1"), "a2")
        client, (ack,) = await fleet_client(clients, running, "d1")
        (name, snapshot), *_ = fleet_events(client)
        assert name == "fleet_snapshot"
        positions = {p["asset_id"] for p in snapshot["data"]["positions"]}
        assert positions == {"a1", "a3", "a4"}  # at most 3, the most recent: a1 is the oldest
        assert [s["asset_id"] for s in snapshot["data"]["statuses"]] == ["a4"]
        assert ack["snapshot"]["assets"] == 3
    finally:
        await running.stop()


async def test_another_org_never_reaches_the_map(
    redis_url: str, path: ConsumerPath, clients: ClientFactory
) -> None:
    running = await gateway_with(redis_url, fleet_batch_ms=100)
    try:
        await path.publish([position("o2", "b1", 1), status("o2", "b1", "available")])
        await path.publish([position("o1", "a1", 1)])
        mine, _ = await fleet_client(clients, running, "d1", "o1")
        theirs, _ = await fleet_client(clients, running, "d2", "o2")
        await path.publish([position("o2", "b1", 2), position("o2", "b2", 1)])
        await path.publish([position("o1", "a1", 2), alert("o2", 1), status("o2", "b2", "x")])
        await mine.wait_for("asset_positions")
        await theirs.wait_for("asset_positions")
        await theirs.wait_for("alert_created")
        await asyncio.sleep(0.3)
        assert set(fleet_view(fleet_events(mine))) == {"a1"}
        assert set(fleet_view(fleet_events(theirs))) == {"b1", "b2"}
        for _name, payload in mine.events[1:]:  # after session
            assert payload.get("organization_id") == "o1", payload
    finally:
        await running.stop()


async def test_maps_joining_during_a_flood_end_complete(
    redis_url: str, path: ConsumerPath, clients: ClientFactory
) -> None:
    """Clients subscribing while positions stream in end with every asset's last position.

    Batches flushed while a snapshot is read follow it as a catch-up batch,
    so the snapshot comes first and nothing between the read and the join is lost.
    """
    running = await gateway_with(redis_url, fleet_batch_ms=20)
    rng = random.Random(7)
    published: list[dict[str, Any]] = []
    joined: list[Client] = []
    try:
        anchor = clients(running.url)  # keeps the org channel subscribed from the start
        assert await anchor.connect(make_token("anchor", "o1"))
        for step in range(60):
            docs = [
                position("o1", f"a{rng.randrange(400)}", step) for _ in range(rng.randint(1, 8))
            ]
            await path.publish(docs)
            published += docs
            if step % 6 == 3:
                client, _ = await fleet_client(clients, running, f"map{step}")
                joined.append(client)
            await asyncio.sleep(0.005)
        want = {asset: data["seq"] for asset, data in latest_by_asset(published).items()}

        def complete(c: Client) -> bool:
            return {a: p["seq"] for a, p in fleet_view(fleet_events(c)).items()} == want

        for client in joined:
            await wait_until(functools.partial(complete, client), what="a complete map")
            assert fleet_events(client)[0][0] == "fleet_snapshot"
    finally:
        await running.stop()


async def test_redis_away_still_answers_with_a_partial_snapshot(
    own_redis: RedisServer, clients: ClientFactory
) -> None:
    running = await gateway_with(own_redis.url, fleet_batch_ms=100, redis_timeout_s=0.5)
    try:
        client = clients(running.url)
        assert await client.connect(make_token("d1", "o1"))
        own_redis.stop()
        ack = await client.call("subscribe", {"room": "fleet", "since": "1732550400000-0"})
        assert ack["ok"]
        assert ack["recovered"] is False
        assert ack["snapshot"] == {"assets": 0, "complete": False}
        (snapshot,) = client.received("fleet_snapshot")
        assert snapshot["data"]["complete"] is False
    finally:
        await running.stop()
