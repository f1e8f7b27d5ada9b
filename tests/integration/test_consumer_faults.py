"""Faults with real servers: crashes, SIGTERM, Redis and Kafka going away.

Invariants checked: no event lost, no event published twice, and offsets are
committed only for events Redis already has.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from fleetcast.devtools import demo, kafka
from fleetcast.devtools.redis import RedisServer
from fleetcast.protocol import keys
from tests.harness.kafka import (
    ConsumerProcess,
    KafkaTopics,
    WireCollector,
    consumer_settings,
    make_producer,
    produce_events,
    running_consumer,
    settings_env,
)

pytestmark = pytest.mark.integration


def fleet_events(count: int, seed: int) -> list[dict[str, Any]]:
    return list(itertools.islice(demo.Fleet(orgs=3, units_per_org=50, seed=seed), count))


def alerts(prefix: str, count: int) -> list[dict[str, Any]]:
    return [
        {
            "event_id": f"{prefix}-{n}",
            "event_type": "alert_created",
            "organization_id": "org-a",
            "occurred_at": "2026-11-25T18:00:00Z",
            "data": {"n": n},
        }
        for n in range(count)
    ]


async def ready_status(port: int) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/ready") as response,
    ):
        return response.status


async def committed(topics: KafkaTopics) -> dict[TopicPartition, int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=topics.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(topics.group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def missing_seen(redis: Any, event_ids: list[str]) -> list[str]:
    """Event ids Redis has no seen-key for (i.e. never published)."""
    flags = []
    for start in range(0, len(event_ids), 500):
        chunk = event_ids[start : start + 500]
        async with redis.pipeline(transaction=False) as pipe:
            for event_id in chunk:
                pipe.exists(keys.seen_event(event_id))
            flags += await pipe.execute()
    return [event_id for event_id, flag in zip(event_ids, flags, strict=True) if not flag]


async def test_a_consumer_killed_mid_stream_loses_nothing_and_publishes_nothing_twice(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, redis_url: str, tmp_path: Path
) -> None:
    sent = fleet_events(8_000, seed=11)
    await produce_events(kafka_producer, kafka_topics, sent)
    env = settings_env(consumer_settings(kafka_topics, redis_url, batch_max=50))
    async with WireCollector(redis_url) as wire_in:
        first = ConsumerProcess(env, tmp_path / "consumer.log")
        await first.start()
        await wire_in.wait_for(1_000)
        first.kill()  # SIGKILL: no commit, no goodbye
        assert len(wire_in.received) < len(sent), "the kill came too late to test anything"
        second = ConsumerProcess(env, tmp_path / "consumer.log")
        await second.start()
        try:
            await wire_in.wait_for(len(sent), timeout_s=120)
        finally:
            assert await second.terminate() == 0
    published = Counter(wire_in.event_ids())
    assert set(published) == {e["event_id"] for e in sent}
    assert [event_id for event_id, n in published.items() if n > 1] == []


async def test_sigterm_finishes_commits_and_leaves_the_group(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, redis_url: str, tmp_path: Path
) -> None:
    sent = fleet_events(3_000, seed=12)
    await produce_events(kafka_producer, kafka_topics, sent)
    consumer = ConsumerProcess(
        settings_env(consumer_settings(kafka_topics, redis_url)), tmp_path / "consumer.log"
    )
    async with WireCollector(redis_url) as wire_in:
        await consumer.start()
        await wire_in.wait_for(len(sent))
        assert await consumer.terminate(timeout_s=30) == 0, consumer.log_tail()
    assert sum((await committed(kafka_topics)).values()) == len(sent)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_topics.bootstrap)
    await admin.start()
    try:
        (response,) = await admin.describe_consumer_groups([kafka_topics.group])
    finally:
        await admin.close()
    # (error_code, group_id, state, protocol_type, protocol, members)
    _, _, state, _, _, members = response.groups[0]
    assert (state, members) == ("Empty", [])  # left at once, not after a session timeout


async def test_offsets_are_committed_only_for_events_redis_has(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, redis_url: str
) -> None:
    sent = alerts("c", 3_000)
    topic = kafka_topics.for_type("alert_created")
    for doc in sent:  # one partition: offset n is event c-n
        await kafka_producer.send(topic, orjson.dumps(doc), partition=0)
    await kafka_producer.flush()
    redis = Redis.from_url(redis_url)
    samples = []
    async with running_consumer(consumer_settings(kafka_topics, redis_url, batch_max=40)):
        for _ in range(600):
            done = (await committed(kafka_topics)).get(TopicPartition(topic, 0), 0)
            samples.append(done)
            assert await missing_seen(redis, [f"c-{n}" for n in range(done)]) == []
            if done == len(sent):
                break
            await asyncio.sleep(0.02)
    await redis.aclose()
    assert samples[-1] == len(sent)


async def test_redis_down_then_back_resumes_without_loss_or_early_commit(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, own_redis: RedisServer
) -> None:
    before, during = alerts("before", 100), alerts("during", 100)
    settings = consumer_settings(kafka_topics, own_redis.url, redis_timeout_s=1.0)
    async with running_consumer(settings):
        redis = Redis.from_url(own_redis.url)
        await produce_events(kafka_producer, kafka_topics, before)
        for _ in range(200):
            if not await missing_seen(redis, [e["event_id"] for e in before]):
                break
            await asyncio.sleep(0.05)
        await redis.aclose()
        own_redis.stop()
        await produce_events(kafka_producer, kafka_topics, during)
        await asyncio.sleep(2.0)  # the consumer is retrying by now
        assert sum((await committed(kafka_topics)).values()) <= len(before)
        assert await ready_status(settings.consumer_port) == 503
        own_redis.start()  # same port, empty: as after a crash without persistence
        redis = Redis.from_url(own_redis.url)
        ids = [e["event_id"] for e in during]
        for _ in range(300):
            if not await missing_seen(redis, ids):
                break
            await asyncio.sleep(0.1)
        assert await missing_seen(redis, ids) == []
        await redis.aclose()
        assert await ready_status(settings.consumer_port) == 200


async def test_kafka_restart_resumes_without_loss(
    kafka_broker: kafka.KafkaBroker,
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
) -> None:
    before, after = alerts("before", 200), alerts("after", 200)
    async with (
        WireCollector(redis_url) as wire_in,
        running_consumer(consumer_settings(kafka_topics, redis_url)),
    ):
        await produce_events(kafka_producer, kafka_topics, before)
        await wire_in.wait_for(len(before))
        await asyncio.to_thread(kafka_broker.restart)
        producer = make_producer(kafka_broker.bootstrap)
        await producer.start()
        try:
            await produce_events(producer, kafka_topics, after)
        finally:
            await producer.stop()
        await wire_in.wait_for(len(before) + len(after), timeout_s=120)
    published = Counter(wire_in.event_ids())
    assert set(published) == {e["event_id"] for e in before + after}
    assert max(published.values()) == 1
