"""The fleet map over the whole path: the consumer keeps the snapshot, the gateway serves it.

Positions produced to Kafka land in the org's snapshot in Redis (consumer);
a client subscribing to ``fleet`` first gets that snapshot, then positions in
``asset_positions`` batches, while status changes arrive at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from fleetcast.protocol import keys
from tests.harness.gateway import SECRET, Client, GatewayProcess, make_token, wait_until
from tests.harness.kafka import KafkaTopics, consumer_settings, produce_events, running_consumer

pytestmark = pytest.mark.integration

WAIT_S = 30.0
_serial = itertools.count()


def position(asset: str, lat: float, org: str = "org-a") -> dict[str, Any]:
    return envelope("asset_position_updated", org, {"asset_id": asset, "lat": lat, "lon": 1.0})


def envelope(event_type: str, org: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "event_id": f"fleet-{next(_serial)}",
        "event_type": event_type,
        "organization_id": org,
        "occurred_at": f"2026-11-25T18:00:{next(_serial) % 60:02d}Z",
        "data": data,
    }


@contextlib.asynccontextmanager
async def whole_path(topics: KafkaTopics, redis_url: str, log_dir: Path) -> AsyncIterator[str]:
    env = {
        "FLEETCAST_JWT_SECRET": SECRET,
        "FLEETCAST_REDIS_URL": redis_url,
        "FLEETCAST_FLEET_BATCH_MS": "200",
    }
    gateway = GatewayProcess(env, log_dir).start()
    try:
        async with running_consumer(consumer_settings(topics, redis_url)):
            await gateway.wait_ready(within=60)
            yield gateway.url
    finally:
        gateway.stop()


async def wait_for_snapshot_size(redis_url: str, org: str, assets: int) -> None:
    redis: Any = Redis.from_url(redis_url)
    try:
        for _ in range(int(WAIT_S / 0.05)):
            if await redis.hlen(keys.fleet_positions(org)) >= assets:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"snapshot of {org} never reached {assets} assets")
    finally:
        await redis.aclose()


async def test_a_map_gets_the_snapshot_then_batches_and_statuses_at_once(
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
    tmp_path: Path,
    clients: Callable[..., Client],
) -> None:
    before = [position(f"u-{n}", float(step)) for step in range(3) for n in range(3)]
    before.append(envelope("asset_status_changed", "org-a", {"asset_id": "u-1", "status": "busy"}))
    before.append(position("other-org-unit", 9.0, org="org-b"))
    async with whole_path(kafka_topics, redis_url, tmp_path) as url:
        await produce_events(kafka_producer, kafka_topics, before)
        await wait_for_snapshot_size(redis_url, "org-a", 3)
        viewer = clients(url)
        assert await viewer.connect(make_token("view-1", "org-a", ("viewer",), ttl=600))
        ack = await viewer.call("subscribe", {"room": "fleet"})
        assert ack["ok"], ack
        (snapshot,) = await viewer.wait_for("fleet_snapshot", within=WAIT_S)
        latest = {p["asset_id"]: p["lat"] for p in snapshot["data"]["positions"]}
        assert latest == {"u-0": 2.0, "u-1": 2.0, "u-2": 2.0}  # latest per asset, own org only
        assert [s["status"] for s in snapshot["data"]["statuses"]] == ["busy"]

        moves = [position("u-0", 10.0 + step) for step in range(5)]
        status = envelope("asset_status_changed", "org-a", {"asset_id": "u-2", "status": "idle"})
        await produce_events(kafka_producer, kafka_topics, [*moves, status])
        await viewer.wait_for("asset_status_changed", within=WAIT_S)

        def newest_u0() -> float | None:
            found = [
                p["lat"]
                for batch in viewer.received("asset_positions")
                for p in batch["data"]["positions"]
                if p["asset_id"] == "u-0"
            ]
            return found[-1] if found else None

        await wait_until(lambda: newest_u0() == 14.0, WAIT_S, "u-0's last position in a batch")
    assert viewer.received("asset_position_updated") == []  # positions come batched only
    batched = [p for b in viewer.received("asset_positions") for p in b["data"]["positions"]]
    assert all(p["asset_id"] != "other-org-unit" for p in batched)
