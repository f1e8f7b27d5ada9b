"""The stall detector: lag and nothing delivered turns /ready false, and back.

Redis frozen with SIGSTOP while events arrive is a wedge of the issue
report's kind (every call hangs until its timeout, nothing fails for good);
the lag gauge must show the backlog while it lasts, not the 0 of the last
good batch.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from fleetcast.devtools.redis import RedisServer
from tests.harness.kafka import (
    KafkaTopics,
    consumer_settings,
    produce_events,
    running_consumer,
    scrape,
)
from tests.integration.consumer_support import alerts, eventually, frozen, ready, redis_pid
from tests.integration.test_consumer_faults import missing_in_history

pytestmark = pytest.mark.integration


async def test_a_consumer_wedged_on_redis_is_stalled_on_ready_with_its_lag_and_recovers(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, own_redis: RedisServer
) -> None:
    before, during = alerts("before", 20), alerts("during", 50)
    settings = consumer_settings(
        kafka_topics, own_redis.url, stall_after_s=2.0, redis_timeout_s=1.0
    )
    port = settings.consumer_port
    async with running_consumer(settings):
        await produce_events(kafka_producer, kafka_topics, before)
        await eventually(lambda: published(port, len(before)), what="the first events published")
        with frozen(redis_pid(own_redis)):
            frozen_at = time.monotonic()
            await produce_events(kafka_producer, kafka_topics, during)
            body = await eventually(lambda: stalled(port), what="a stall on /ready")
            flagged_s = time.monotonic() - frozen_at
            wedged = await scrape(port)
        resumed = time.monotonic()
        await eventually(lambda: ready_again(port), what="/ready 200 after SIGCONT")
        recovered_s = time.monotonic() - resumed
        after = await scrape(port)
        redis: Any = Redis.from_url(own_redis.url)
        try:
            missing = await missing_in_history(redis, "org:org-a", [e["event_id"] for e in during])
        finally:
            await redis.aclose()
    topic = kafka_topics.for_type("alert_created")
    assert body["flowing"] is False
    (partition,) = body["stalled"]  # org-a's events share one partition
    assert partition.startswith(f"{topic}:")
    lag = wedged[f"fleetcast_consumer_lag{{partition={partition.rsplit(':', 1)[1]},topic={topic}}}"]
    assert lag > 0
    assert wedged["fleetcast_consumer_stalled"] == 1
    assert after["fleetcast_consumer_stalled"] == 0
    assert missing == []
    print(
        f"stall: flagged {flagged_s:.1f}s after the freeze (lag {lag:.0f}),"
        f" /ready back {recovered_s:.1f}s after SIGCONT"
    )


async def published(port: int, count: int) -> bool:
    return (await scrape(port))["fleetcast_consumer_published_total"] >= count


async def stalled(port: int) -> dict[str, Any] | None:
    _, body = await ready(port)
    return body if body.get("stalled") else None


async def ready_again(port: int) -> bool:
    status, _ = await ready(port)
    return status == 200
