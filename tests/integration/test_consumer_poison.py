"""No record and no dead-letter topic holds the loop: the poison cases, real broker.

- A record the broker accepts at its size limit (1,048,450 bytes under the
  1 MiB default) would make a dead-letter copy too large for any request:
  it goes to the DLQ truncated, and every other org and topic keeps flowing.
- A DLQ topic that is missing, or too small for the copy, is a condition:
  counted, logged, on /ready; under the default policy good events flow and
  the bad record's offset is committed; under "block" everything waits.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from fleetcast.consumer import deadletter
from fleetcast.devtools import kafka
from tests.harness.kafka import (
    KafkaTopics,
    WireCollector,
    consumer_settings,
    produce_events,
    running_consumer,
    scrape,
)
from tests.integration.consumer_support import alerts, committed, eventually, read_topic, ready

pytestmark = pytest.mark.integration

#: The value of the issue's report: the broker takes it, its dead-letter copy did not fit.
AT_THE_LIMIT = 1_048_450


async def send_poison(
    producer: AIOKafkaProducer, topic: str, value: bytes, key: bytes = b"org-a"
) -> int:
    """Write one bad record to partition 0; its offset."""
    meta = await producer.send_and_wait(topic, value, key=key, partition=0)
    return int(meta.offset)


async def create_topic(bootstrap: str, name: str, **config: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 1, 1, topic_configs=config)])
    finally:
        await admin.close()
    await kafka.create_topics(bootstrap, [name])  # exists now: waits for its leader


async def committed_past(topics: KafkaTopics, topic: str, offset: int) -> bool:
    return (await committed(topics)).get(TopicPartition(topic, 0), 0) > offset


async def test_a_record_at_the_broker_limit_goes_to_the_dlq_truncated_and_others_flow(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, redis_url: str
) -> None:
    incidents = kafka_topics.for_type("incident_created")
    head, tail = b'{"event_id": "huge", "data": "', b'"}'
    value = head + b"x" * (AT_THE_LIMIT - len(head) - len(tail)) + tail
    assert len(value) == AT_THE_LIMIT
    before, after = alerts("before", 20, org="org-b"), alerts("after", 20, org="org-b")
    settings = consumer_settings(kafka_topics, redis_url)
    async with WireCollector(redis_url) as wire_in, running_consumer(settings):
        await produce_events(kafka_producer, kafka_topics, before)
        offset = await send_poison(kafka_producer, incidents, value)
        sent = time.monotonic()
        await produce_events(kafka_producer, kafka_topics, after)
        await wire_in.wait_for(len(before) + len(after))
        flowed_s = time.monotonic() - sent
        (dead,) = await read_topic(kafka_topics.bootstrap, kafka_topics.dlq, 1)
        await eventually(lambda: committed_past(kafka_topics, incidents, offset))
        metrics = await scrape(settings.consumer_port)
        status, body = await ready(settings.consumer_port)
    assert sorted(wire_in.event_ids()) == sorted(e["event_id"] for e in before + after)
    headers = {name: value.decode() for name, value in dead.headers}
    assert headers[deadletter.HEADER_REASON] == "oversized"
    assert (headers[deadletter.HEADER_TOPIC], headers[deadletter.HEADER_OFFSET]) == (
        incidents,
        str(offset),
    )
    assert headers[deadletter.HEADER_ORIGINAL_SIZE] == str(AT_THE_LIMIT)
    assert dead.key == b"org-a"
    assert 1_000_000 < len(dead.value) < AT_THE_LIMIT
    assert value.startswith(dead.value)
    assert metrics["fleetcast_consumer_dead_letters_truncated_total"] == 1
    assert metrics["fleetcast_consumer_dead_lettered_total{reason=oversized}"] == 1
    assert (status, body["dead_letters"]) == (200, True)
    print(f"record at the limit: every later event delivered {flowed_s:.2f}s after it was sent")


async def test_a_dlq_too_small_for_the_copy_is_a_condition_and_good_events_flow(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, redis_url: str
) -> None:
    """The DLQ topic's max.message.bytes is below KAFKA_DLQ_MAX_RECORD_BYTES: the broker refuses."""
    small_dlq = kafka_topics.topic("small.dlq")
    await create_topic(kafka_topics.bootstrap, small_dlq, **{"max.message.bytes": "65536"})
    alerts_topic = kafka_topics.for_type("alert_created")
    before, after = alerts("before", 20), alerts("after", 20, org="org-b")
    settings = consumer_settings(kafka_topics, redis_url, kafka_dlq_topic=small_dlq)
    async with WireCollector(redis_url) as wire_in, running_consumer(settings):
        await produce_events(kafka_producer, kafka_topics, before)
        offset = await send_poison(kafka_producer, alerts_topic, b"x" * 200_000)
        sent = time.monotonic()
        await produce_events(kafka_producer, kafka_topics, after)
        await wire_in.wait_for(len(before) + len(after))
        flowed_s = time.monotonic() - sent
        await eventually(lambda: committed_past(kafka_topics, alerts_topic, offset))
        metrics = await scrape(settings.consumer_port)
        status, body = await ready(settings.consumer_port)
    assert sorted(wire_in.event_ids()) == sorted(e["event_id"] for e in before + after)
    assert metrics["fleetcast_consumer_dead_letters_dropped_total{cause=too_large}"] == 1
    assert metrics["fleetcast_consumer_dead_letter_unwritable"] == 1
    assert (status, body["dead_letters"], body["dead_letter_topic"]) == (503, False, "too_large")
    assert await read_topic(kafka_topics.bootstrap, small_dlq, 1, timeout_s=2) == []
    print(f"DLQ too small: every later event delivered {flowed_s:.2f}s after the record")


async def test_a_missing_dlq_is_counted_on_ready_and_good_events_flow_until_it_exists(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, redis_url: str
) -> None:
    missing = kafka_topics.topic("missing.dlq")
    alerts_topic = kafka_topics.for_type("alert_created")
    first, second = alerts("first", 20), alerts("second", 20, org="org-b")
    settings = consumer_settings(
        kafka_topics,
        redis_url,
        kafka_dlq_topic=missing,
        kafka_dlq_timeout_ms=2000,
        kafka_dlq_recheck_s=1.0,
    )
    port = settings.consumer_port
    async with WireCollector(redis_url) as wire_in, running_consumer(settings):
        offset = await send_poison(kafka_producer, alerts_topic, b"not json, lost")
        sent = time.monotonic()
        await produce_events(kafka_producer, kafka_topics, first)
        await wire_in.wait_for(len(first))
        flowed_s = time.monotonic() - sent
        await eventually(lambda: committed_past(kafka_topics, alerts_topic, offset))
        metrics = await scrape(port)
        status, body = await ready(port)
        assert metrics["fleetcast_consumer_dead_letters_dropped_total{cause=unknown_topic}"] == 1
        assert (status, body["dead_letters"], body["dead_letter_topic"]) == (
            503,
            False,
            "unknown_topic",
        )
        await create_topic(kafka_topics.bootstrap, missing)
        created = time.monotonic()
        await send_poison(kafka_producer, alerts_topic, b"not json, kept")
        await produce_events(kafka_producer, kafka_topics, second)
        (dead,) = await read_topic(kafka_topics.bootstrap, missing, 1)
        await eventually(lambda: ready_again(port), what="/ready 200 once the DLQ exists")
        recovered_s = time.monotonic() - created
        await wire_in.wait_for(len(first) + len(second))
        metrics = await scrape(port)
    assert dead.value == b"not json, kept"
    assert metrics["fleetcast_consumer_dead_letter_unwritable"] == 0
    assert metrics["fleetcast_consumer_dead_letters_dropped_total{cause=unknown_topic}"] == 1
    print(
        f"missing DLQ: events behind the bad record delivered {flowed_s:.2f}s after it"
        f" (KAFKA_DLQ_TIMEOUT_MS 2000), /ready back {recovered_s:.1f}s after the topic existed"
    )


async def ready_again(port: int) -> bool:
    status, _ = await ready(port)
    return status == 200


async def test_under_the_block_policy_a_missing_dlq_holds_everything_until_it_exists(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, redis_url: str
) -> None:
    missing = kafka_topics.topic("missing.dlq")
    held = alerts("held", 10, org="org-b")
    settings = consumer_settings(
        kafka_topics,
        redis_url,
        kafka_dlq_topic=missing,
        kafka_dlq_timeout_ms=1000,
        kafka_dlq_failure_policy="block",
        stall_after_s=1.0,
    )
    port = settings.consumer_port
    async with WireCollector(redis_url) as wire_in, running_consumer(settings):
        await send_poison(kafka_producer, kafka_topics.for_type("alert_created"), b"[1")
        await eventually(lambda: dead_letters_failing(port), what="the DLQ condition")
        await produce_events(kafka_producer, kafka_topics, held)
        body = await eventually(lambda: stalled(port), what="a stall on /ready")
        assert wire_in.received == []  # nothing passes a blocked batch
        await create_topic(kafka_topics.bootstrap, missing)
        created = time.monotonic()
        await wire_in.wait_for(len(held))
        released_s = time.monotonic() - created
        await eventually(lambda: ready_again(port), what="/ready 200 once the DLQ exists")
        metrics = await scrape(port)
    assert body["dead_letter_topic"] == "unknown_topic"
    assert not any(k.startswith("fleetcast_consumer_dead_letters_dropped") for k in metrics)
    assert len(await read_topic(kafka_topics.bootstrap, missing, 1)) == 1
    print(f"block policy: held events delivered {released_s:.1f}s after the DLQ existed")


async def dead_letters_failing(port: int) -> bool:
    _, body = await ready(port)
    return body["dead_letters"] is False


async def stalled(port: int) -> dict[str, Any] | None:
    _, body = await ready(port)
    return body if body.get("stalled") else None
