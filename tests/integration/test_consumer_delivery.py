"""Kafka -> consumer -> Redis with real servers: what each event becomes in Redis."""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from fleetcast.consumer.encoding import HISTORY_TTL_SLACK
from fleetcast.protocol import events, keys, routing
from tests.harness import redis as redis_harness
from tests.harness.kafka import (
    KafkaTopics,
    WireCollector,
    consumer_settings,
    produce_events,
    running_consumer,
    scrape,
)

pytestmark = pytest.mark.integration

ALL_IDS = {"channel_id": "ch-3", "incident_id": "inc-9", "asset_id": "u-7", "user_id": "usr-1"}


def connect(url: str) -> Any:
    """A Redis client (one server or a cluster); typed Any: redis-py's replies are unions."""
    return redis_harness.client(url)


async def wait_for_commit(port: int) -> dict[str, float]:
    """Metrics once the batch is committed (the commit follows the publish)."""
    for _ in range(200):
        metrics = await scrape(port)
        if metrics["fleetcast_consumer_commits_total"] >= 1:
            return metrics
        await asyncio.sleep(0.05)
    raise AssertionError("no commit")


def envelope(
    event_type: str, org: str, n: int, data: dict[str, Any] | None = None
) -> dict[str, Any]:
    return {
        "event_id": f"{org}-{event_type}-{n}",
        "event_type": event_type,
        "organization_id": org,
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": {**ALL_IDS, "seq": n} if data is None else data,
    }


async def test_each_type_reaches_its_org_channel_rooms_and_history(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, any_redis_url: str
) -> None:
    sent = [envelope(t, org, 0) for org in ("org-a", "org-b") for t in sorted(events.EVENT_TYPES)]
    table = routing.RoutingTable.default()
    redis = connect(any_redis_url)
    async with (
        WireCollector(any_redis_url) as wire_in,
        running_consumer(consumer_settings(kafka_topics, any_redis_url)),
    ):
        await produce_events(kafka_producer, kafka_topics, sent)
        await wire_in.wait_for(len(sent))
    by_id = {item.event["event_id"]: (channel, item) for channel, item in wire_in.received}
    assert sorted(by_id) == sorted(e["event_id"] for e in sent)
    for doc in sent:
        channel, item = by_id[doc["event_id"]]
        assert channel == keys.org_channel(doc["organization_id"])
        assert item.event == doc
        expected = [r.name for r in routing.route(events.validate_envelope(doc), table)]
        assert list(item.rooms) == expected
        history_rooms = [room for room in expected if not room.startswith("fleet:")]
        assert sorted(item.offsets) == sorted(history_rooms)
        for room, offset in item.offsets.items():
            entries = await redis.xrange(keys.history_stream(room), offset, offset)
            assert orjson.loads(entries[0][1][keys.HISTORY_FIELD.encode()]) == doc
            ttl = await redis.ttl(keys.history_stream(room))
            # a user room's history is the user's inbox: kept INBOX_TTL_S, not HISTORY_TTL_S
            least = keys.INBOX_TTL_S if room.startswith("user:") else keys.HISTORY_TTL_S
            assert least <= ttl <= least + keys.HISTORY_TTL_S * HISTORY_TTL_SLACK
    assert not await redis.exists(keys.history_stream("fleet:org:org-a"))
    await redis.aclose()


async def test_history_keeps_the_order_of_a_partition(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, any_redis_url: str
) -> None:
    sent = [envelope("incident_updated", "org-a", n, {"incident_id": "inc-1"}) for n in range(300)]
    async with (
        WireCollector(any_redis_url) as wire_in,
        running_consumer(consumer_settings(kafka_topics, any_redis_url, batch_max=37)),
    ):
        await produce_events(kafka_producer, kafka_topics, sent)
        await wire_in.wait_for(len(sent))
    assert wire_in.event_ids() == [e["event_id"] for e in sent]
    redis = connect(any_redis_url)
    entries = await redis.xrange(keys.history_stream("incident:inc-1:org:org-a"))
    await redis.aclose()
    history = [orjson.loads(fields[b"e"])["event_id"] for _, fields in entries]
    assert history == [e["event_id"] for e in sent]
    offsets = [item.offsets["incident:inc-1:org:org-a"] for _, item in wire_in.received]
    assert offsets == [entry_id.decode() for entry_id, _ in entries]


async def test_the_fleet_snapshot_holds_the_latest_position_and_status_per_asset(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, any_redis_url: str
) -> None:
    sent = [
        envelope("asset_position_updated", "org-a", n, {"asset_id": f"u-{n % 3}", "lat": n})
        for n in range(9)
    ]
    sent.append(envelope("asset_status_changed", "org-a", 0, {"asset_id": "u-1", "status": "busy"}))
    async with (
        WireCollector(any_redis_url) as wire_in,
        running_consumer(consumer_settings(kafka_topics, any_redis_url)),
    ):
        await produce_events(kafka_producer, kafka_topics, sent)
        await wire_in.wait_for(len(sent))
    redis = connect(any_redis_url)
    positions = await redis.hgetall(keys.fleet_positions("org-a"))
    statuses = await redis.hgetall(keys.fleet_statuses("org-a"))
    last_seen = await redis.zrange(keys.fleet_last_seen("org-a"), 0, -1)
    ttl = await redis.ttl(keys.fleet_positions("org-a"))
    await redis.aclose()
    assert {k.decode(): orjson.loads(v)["data"]["lat"] for k, v in positions.items()} == {
        "u-0": 6,
        "u-1": 7,
        "u-2": 8,
    }
    assert {k.decode(): orjson.loads(v)["data"]["status"] for k, v in statuses.items()} == {
        "u-1": "busy"
    }
    assert sorted(last_seen) == [b"u-0", b"u-1", b"u-2"]
    assert 0 < ttl <= keys.FLEET_ASSET_TTL_S


async def test_metrics_count_consumed_published_and_batches(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, any_redis_url: str
) -> None:
    sent = [envelope("alert_created", "org-a", n, {}) for n in range(20)]
    settings = consumer_settings(kafka_topics, any_redis_url)
    async with WireCollector(any_redis_url) as wire_in, running_consumer(settings):
        await produce_events(kafka_producer, kafka_topics, sent)
        await wire_in.wait_for(len(sent))
        metrics = await wait_for_commit(settings.consumer_port)
    topic = kafka_topics.for_type("alert_created")
    assert metrics[f"fleetcast_consumer_consumed_total{{topic={topic}}}"] == 20
    assert metrics["fleetcast_consumer_published_total"] == 20
    assert metrics["fleetcast_consumer_batch_size_count"] >= 1
    assert metrics["fleetcast_consumer_publish_seconds_count"] >= 1
    assert metrics["fleetcast_consumer_commits_total"] >= 1
    lags = [v for k, v in metrics.items() if k.startswith("fleetcast_consumer_lag{")]
    assert lags
    assert all(v == 0 for v in lags)
