"""Pytest fixtures for a real Apache Kafka broker (single-node KRaft, loopback).

One broker serves the whole session (start-up is the slow part); tests stay
independent by using topics and consumer groups of their own, named after the
test (:class:`KafkaTopics`). A test that restarts the broker uses
``kafka_broker.restart()``: same port, same data, so later tests do not notice.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from dataclasses import dataclass

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from fleetcast.devtools import kafka
from fleetcast.protocol import events

_counter = itertools.count(1)


@pytest.fixture(scope="session")
def kafka_broker() -> Iterator[kafka.KafkaBroker]:
    """The session's broker; a missing java or jar fails the test (never skips)."""
    broker = kafka.KafkaBroker.create()
    broker.start()
    try:
        yield broker
    finally:
        broker.close()


@pytest.fixture(scope="session")
def kafka_bootstrap(kafka_broker: kafka.KafkaBroker) -> str:
    return kafka_broker.bootstrap


@dataclass(frozen=True)
class KafkaTopics:
    """The event topics and the dead-letter topic of one test, uniquely named.

    ``topic("fleet.assets")`` is this test's copy of that default topic.
    """

    bootstrap: str
    prefix: str

    def topic(self, default_name: str) -> str:
        return f"{self.prefix}.{default_name}"

    @property
    def events(self) -> tuple[str, ...]:
        return tuple(self.topic(name) for name in events.DEFAULT_TOPICS)

    @property
    def dlq(self) -> str:
        return self.topic(events.DEFAULT_DLQ_TOPIC)

    @property
    def group(self) -> str:
        return f"{self.prefix}.consumer"

    def for_type(self, event_type: str) -> str:
        """This test's topic for an event type (the catalog's default topic)."""
        return self.topic(events.CATALOG[event_type])

    async def create(self, partitions: int = 1) -> None:
        await kafka.create_topics(self.bootstrap, [*self.events, self.dlq], partitions)

    def consumer_env(self) -> dict[str, str]:
        """FLEETCAST_* settings pointing a consumer at these topics."""
        return {
            "FLEETCAST_KAFKA_BOOTSTRAP_SERVERS": self.bootstrap,
            "FLEETCAST_KAFKA_TOPICS": ",".join(self.events),
            "FLEETCAST_KAFKA_GROUP_ID": self.group,
            "FLEETCAST_KAFKA_DLQ_TOPIC": self.dlq,
        }


@pytest.fixture
async def kafka_topics(kafka_bootstrap: str, request: pytest.FixtureRequest) -> KafkaTopics:
    """Fresh topics (3 partitions each) for this test only."""
    slug = re.sub(r"[^A-Za-z0-9]+", "-", request.node.name)[:60].strip("-")
    topics = KafkaTopics(kafka_bootstrap, f"t{next(_counter)}-{slug}")
    await topics.create(partitions=3)
    return topics


@pytest.fixture
async def kafka_producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A started producer (acks=all) on the session broker."""
    producer = make_producer(kafka_bootstrap)
    await producer.start()
    try:
        yield producer
    finally:
        await producer.stop()


def make_producer(bootstrap: str) -> AIOKafkaProducer:
    return AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)


async def produce_events(
    producer: AIOKafkaProducer,
    topics: KafkaTopics,
    envelopes: Iterable[Mapping[str, object]],
) -> None:
    """Send envelopes to their type's topic, keyed by org as domain services do."""
    futures = []
    for envelope in envelopes:
        topic = topics.for_type(str(envelope["event_type"]))
        key = str(envelope["organization_id"]).encode()
        futures.append(await producer.send(topic, orjson.dumps(envelope), key=key))
    for future in futures:
        await future
