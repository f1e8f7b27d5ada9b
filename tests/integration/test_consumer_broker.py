"""The Kafka harness itself: topics of a test exist with their partitions, and a
broker restart keeps the data (the fault tests rely on both)."""

from __future__ import annotations

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from fleetcast.devtools import kafka
from tests.harness.kafka import KafkaTopics, make_producer

pytestmark = pytest.mark.integration


async def test_topics_are_created_with_partitions(kafka_topics: KafkaTopics) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_topics.bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([*kafka_topics.events, kafka_topics.dlq])
    finally:
        await admin.close()
    assert len(described) == len(kafka_topics.events) + 1
    assert {t["topic"] for t in described} == {*kafka_topics.events, kafka_topics.dlq}
    for topic in described:
        assert sorted(p["partition"] for p in topic["partitions"]) == [0, 1, 2]


async def test_records_survive_a_broker_restart(
    kafka_broker: kafka.KafkaBroker, kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer
) -> None:
    topic = kafka_topics.events[0]
    await kafka_producer.send_and_wait(topic, b"before", partition=0)
    kafka_broker.restart()
    producer = make_producer(kafka_broker.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"after", partition=0)
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(
        bootstrap_servers=kafka_broker.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        batch = await consumer.getmany(partition, timeout_ms=10_000)
        assert [record.value for record in batch[partition]] == [b"before", b"after"]
    finally:
        await consumer.stop()
