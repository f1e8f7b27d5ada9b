"""Poison messages on every topic go to the dead-letter topic; the loop goes on."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from fleetcast.consumer import deadletter
from tests.harness.kafka import (
    KafkaTopics,
    WireCollector,
    consumer_settings,
    running_consumer,
    scrape,
)

pytestmark = pytest.mark.integration

GOOD: dict[str, Any] = {
    "event_type": "alert_created",
    "organization_id": "org-a",
    "occurred_at": "2026-11-25T18:00:00Z",
    "data": {},
}
MAX_BYTES = 2048
POISON: dict[str, bytes] = {
    "not_json": b"\x00\x01 definitely not json",
    "not_object": b"[1, 2, 3]",
    "missing_field": orjson.dumps({"event_id": "x", "event_type": "alert_created"}),
    "invalid_field": orjson.dumps({**GOOD, "event_id": "x", "organization_id": "org:b"}),
    "unknown_type": orjson.dumps({**GOOD, "event_id": "x", "event_type": "alien_landed"}),
    "oversized": orjson.dumps({**GOOD, "event_id": "x", "data": {"blob": "x" * MAX_BYTES}}),
}


async def read_all(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=f"{topic}.r"
    )
    await consumer.start()
    records: list[Any] = []
    try:
        for _ in range(100):
            polled = await consumer.getmany(timeout_ms=200)
            records += [r for batch in polled.values() for r in batch]
            if len(records) >= count:
                break
    finally:
        await consumer.stop()
    return records


async def test_poison_on_every_topic_is_dead_lettered_with_reason_and_origin(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, redis_url: str
) -> None:
    origins: dict[tuple[str, int, int], str] = {}
    good_ids = []
    for topic in kafka_topics.events:
        for reason, value in POISON.items():
            meta = await kafka_producer.send_and_wait(topic, value, key=b"org-a", partition=0)
            origins[(topic, 0, meta.offset)] = reason
        event_id = f"good-after-poison-{topic}"
        good = {**GOOD, "event_id": event_id}
        await kafka_producer.send_and_wait(topic, orjson.dumps(good), key=b"org-a", partition=0)
        good_ids.append(event_id)
    settings = consumer_settings(kafka_topics, redis_url, max_event_bytes=MAX_BYTES)
    async with WireCollector(redis_url) as wire_in, running_consumer(settings):
        await wire_in.wait_for(len(good_ids))
        dead = await read_all(kafka_topics.bootstrap, kafka_topics.dlq, len(origins))
        metrics = await scrape(settings.consumer_port)
    assert sorted(wire_in.event_ids()) == sorted(good_ids)
    assert len(dead) == len(origins)
    for record in dead:
        headers = {name: value.decode() for name, value in record.headers}
        origin = (
            headers[deadletter.HEADER_TOPIC],
            int(headers[deadletter.HEADER_PARTITION]),
            int(headers[deadletter.HEADER_OFFSET]),
        )
        assert headers[deadletter.HEADER_REASON] == origins[origin]
        assert record.value == POISON[origins[origin]]
        assert record.key == b"org-a"
        assert headers[deadletter.HEADER_ERROR]
    for reason in POISON:
        key = f"fleetcast_consumer_dead_lettered_total{{reason={reason}}}"
        assert metrics[key] == len(kafka_topics.events)


async def test_an_occurred_at_that_is_no_timestamp_is_dead_lettered_on_the_fast_path(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, redis_url: str
) -> None:
    """The route of the bad event is known (memo warm): the fast path must check occurred_at."""
    topic = kafka_topics.for_type("alert_created")
    good = [{**GOOD, "event_id": f"good-{n}"} for n in range(2)]
    bad = {**GOOD, "event_id": "bad", "occurred_at": "yesterday"}
    for doc in (good[0], bad, good[1]):
        await kafka_producer.send_and_wait(topic, orjson.dumps(doc), key=b"org-a", partition=0)
    settings = consumer_settings(kafka_topics, redis_url)
    async with WireCollector(redis_url) as wire_in, running_consumer(settings):
        await wire_in.wait_for(len(good))
        (dead,) = await read_all(kafka_topics.bootstrap, kafka_topics.dlq, 1)
    assert wire_in.event_ids() == ["good-0", "good-1"]
    headers = {name: value.decode() for name, value in dead.headers}
    assert (headers[deadletter.HEADER_REASON], headers[deadletter.HEADER_OFFSET]) == (
        "invalid_field",
        "1",
    )
    assert "RFC 3339" in headers[deadletter.HEADER_ERROR]
