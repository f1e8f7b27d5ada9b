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
from tests.integration.consumer_support import alerts, committed

pytestmark = pytest.mark.integration


def fleet_events(count: int, seed: int) -> list[dict[str, Any]]:
    return list(itertools.islice(demo.Fleet(orgs=3, units_per_org=50, seed=seed), count))


async def ready_status(port: int) -> int:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/ready") as response,
    ):
        return response.status


async def published_fences(redis: Any, bootstrap: str) -> dict[str, int]:
    """The publish fences of the test broker's cluster: partition -> last offset in Redis
    (the highest over the orgs' fences)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        cluster_id = (await admin.describe_cluster())["cluster_id"]
    finally:
        await admin.close()
    merged: dict[str, int] = {}
    for org in await redis.smembers(keys.fenced_orgs(cluster_id)):
        fences = await redis.hgetall(keys.publish_fence(cluster_id, org.decode()))
        for name, value in fences.items():
            merged[name.decode()] = max(merged.get(name.decode(), -1), int(value))
    return merged


async def missing_in_history(redis: Any, room: str, event_ids: list[str]) -> list[str]:
    """Event ids absent from a room's history stream (i.e. never published)."""
    entries = await redis.xrange(keys.history_stream(room))
    stored = {
        orjson.loads(fields[keys.HISTORY_FIELD.encode()])["event_id"] for _, fields in entries
    }
    return [event_id for event_id in event_ids if event_id not in stored]


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
    """Sampled while events keep coming: the committed offset never passes the fence."""
    sent = alerts("c", 3_000)
    topic = kafka_topics.for_type("alert_created")
    redis = Redis.from_url(redis_url)
    samples = []
    settings = consumer_settings(kafka_topics, redis_url, batch_max=40, commit_interval_ms=0)
    try:
        async with running_consumer(settings):
            for start in range(0, len(sent), 100):
                for doc in sent[start : start + 100]:  # one partition
                    await kafka_producer.send(topic, orjson.dumps(doc), partition=0)
                await kafka_producer.flush()
                samples.append(await commit_within_fence(kafka_topics, redis, topic))
            for _ in range(300):
                samples.append(await commit_within_fence(kafka_topics, redis, topic))
                if samples[-1] == len(sent):
                    break
                await asyncio.sleep(0.05)
    finally:
        await redis.aclose()
    assert samples[-1] == len(sent)
    assert len(set(samples)) > 10, "too few commits seen to test anything"


async def commit_within_fence(topics: KafkaTopics, redis: Any, topic: str) -> int:
    """The committed offset of ``topic``:0, checked against what Redis has published."""
    done = (await committed(topics)).get(TopicPartition(topic, 0), 0)
    fence = (await published_fences(redis, topics.bootstrap)).get(f"{topic}:0", -1)
    assert done <= fence + 1, f"committed {done} past the last offset Redis holds ({fence})"
    return done


async def test_redis_down_then_back_resumes_without_loss_or_early_commit(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, own_redis: RedisServer
) -> None:
    before, during = alerts("before", 100), alerts("during", 100)
    settings = consumer_settings(kafka_topics, own_redis.url, redis_timeout_s=1.0)
    async with running_consumer(settings):
        redis = Redis.from_url(own_redis.url)
        await produce_events(kafka_producer, kafka_topics, before)
        for _ in range(200):
            if not await missing_in_history(redis, "org:org-a", [e["event_id"] for e in before]):
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
            if not await missing_in_history(redis, "org:org-a", ids):
                break
            await asyncio.sleep(0.1)
        assert await missing_in_history(redis, "org:org-a", ids) == []
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


async def test_a_topic_created_again_is_not_hidden_by_the_old_topics_fence(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, redis_url: str
) -> None:
    """Offsets restart at 0 when a topic is deleted and created again; the old fence is dropped."""
    topic = kafka_topics.for_type("alert_created")
    old, new = alerts("old", 200), alerts("new", 50)
    settings = consumer_settings(kafka_topics, redis_url)
    async with WireCollector(redis_url) as wire_in:
        async with running_consumer(settings):
            await send_to_partition_0(kafka_producer, topic, old)
            await wire_in.wait_for(len(old))
        await create_again(kafka_topics.bootstrap, topic)
        await send_to_partition_0(kafka_producer, topic, new)  # offsets 0..49, below the fence
        async with running_consumer(settings):
            await wire_in.wait_for(len(old) + len(new))
    assert Counter(wire_in.event_ids()) == Counter(e["event_id"] for e in old + new)


async def send_to_partition_0(
    producer: AIOKafkaProducer, topic: str, docs: list[dict[str, Any]]
) -> None:
    for doc in docs:
        await producer.send(topic, orjson.dumps(doc), partition=0)
    await producer.flush()


async def create_again(bootstrap: str, topic: str) -> None:
    """Delete ``topic``, wait until the broker forgot it, and create it afresh."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_topics([topic])
        for _ in range(100):
            if topic not in await admin.list_topics():
                break
            await asyncio.sleep(0.1)
    finally:
        await admin.close()
    await kafka.create_topics(bootstrap, [topic], partitions=3)
