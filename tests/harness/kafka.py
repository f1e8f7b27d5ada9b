"""Pytest fixtures for a real Apache Kafka broker (single-node KRaft, loopback),
and helpers to run the consumer against it.

One broker serves the whole session (start-up is the slow part); tests stay
independent by using topics and consumer groups of their own, named after the
test (:class:`KafkaTopics`). A test that restarts the broker uses
``kafka_broker.restart()``: same port, same data, so later tests do not notice.

The consumer runs in the test's event loop (:func:`running_consumer`) or as a
child process (:class:`ConsumerProcess`, for SIGKILL/SIGTERM tests);
:class:`WireCollector` records what it published on the org channels.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import aiohttp
import orjson
import pytest
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from fleetcast.common import redisurl
from fleetcast.consumer import app
from fleetcast.consumer.settings import Settings
from fleetcast.devtools import kafka
from fleetcast.devtools.ports import free_port
from fleetcast.protocol import control, events, keys, wire

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
    def control(self) -> str:
        return self.topic(control.DEFAULT_TOPIC)

    @property
    def group(self) -> str:
        return f"{self.prefix}.consumer"

    def for_type(self, event_type: str) -> str:
        """This test's topic for an event type (the catalog's default topic)."""
        return self.topic(events.CATALOG[event_type])

    async def create(self, partitions: int = 1) -> None:
        await kafka.create_topics(
            self.bootstrap, [*self.events, self.dlq, self.control], partitions
        )


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


# --- the consumer, in this event loop or as a process ----------------------------


def consumer_settings(topics: KafkaTopics, redis_url: str, **overrides: Any) -> Settings:
    """Settings of a consumer of ``topics`` writing to ``redis_url``, reading from the start."""
    values: dict[str, Any] = {
        "kafka_bootstrap_servers": topics.bootstrap,
        "kafka_topics": list(topics.events),
        "kafka_group_id": topics.group,
        "kafka_dlq_topic": topics.dlq,
        "kafka_control_topic": topics.control,
        "kafka_auto_offset_reset": "earliest",
        "redis_url": redis_url,
        "consumer_port": free_port(),
        "retry_backoff_max_s": 0.5,
    }
    values.update(overrides)
    return Settings(**values)


async def wait_ready(port: int, timeout_s: float = 60.0) -> None:
    """Until the consumer on ``port`` answers /ready with 200."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, OSError):
                async with session.get(f"http://127.0.0.1:{port}/ready") as response:
                    if response.status == 200:
                        return
            await asyncio.sleep(0.05)
    raise TimeoutError(f"consumer on :{port} not ready after {timeout_s:.0f}s")


async def scrape(port: int) -> dict[str, float]:
    """One consumer's /metrics as {"name{label=value,...}": value}."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        text = await response.text()
    out: dict[str, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = ",".join(f"{k}={v}" for k, v in sorted(sample.labels.items()))
            out[f"{sample.name}{{{labels}}}" if labels else sample.name] = sample.value
    return out


@contextlib.asynccontextmanager
async def running_consumer(settings: Settings) -> AsyncIterator[Settings]:
    """A consumer in this event loop, ready (joined, Redis answering) on entry."""
    stopping = asyncio.Event()
    task = asyncio.create_task(app.run(settings, stopping))
    try:
        await _ready_or_crashed(task, settings.consumer_port)
        yield settings
    finally:
        stopping.set()
        await asyncio.wait_for(task, 60)


async def _ready_or_crashed(task: asyncio.Task[None], port: int) -> None:
    ready = asyncio.create_task(wait_ready(port))
    done, _ = await asyncio.wait({task, ready}, return_when=asyncio.FIRST_COMPLETED)
    if task in done:
        ready.cancel()
        task.result()  # raises what made it stop
        raise RuntimeError("consumer stopped before it was ready")
    ready.result()


class ConsumerProcess:
    """``python -m fleetcast.consumer`` as a child process (signals, crashes)."""

    def __init__(self, settings_env: Mapping[str, str], log_path: Path) -> None:
        self.env = {**os.environ, **settings_env}
        self.port = int(settings_env["FLEETCAST_CONSUMER_PORT"])
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def spawn(self) -> None:
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "fleetcast.consumer"],
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )

    async def start(self) -> None:
        """Spawn and wait until /ready."""
        self.spawn()
        try:
            await wait_ready(self.port)
        except TimeoutError:
            self.kill()
            raise RuntimeError(f"consumer did not start:\n{self.log_tail()}") from None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(30)

    async def terminate(self, timeout_s: float = 30.0) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        return await asyncio.to_thread(self.process.wait, timeout_s)

    def log_tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


def settings_env(settings: Settings) -> dict[str, str]:
    """The FLEETCAST_* variables that reproduce ``settings`` in a child process."""
    env = {}
    for name, value in settings.model_dump(exclude_defaults=True).items():
        text = value if isinstance(value, str) else orjson.dumps(value).decode()
        env[f"FLEETCAST_{name.upper()}"] = text
    return env


# --- what reached Redis ------------------------------------------------------------


#: Orgs a collector listens to on a cluster (sharded pub/sub has no patterns).
COLLECTED_ORGS: Final = ("org-1", "org-a", "org-b", "org-c")


class WireCollector:
    """Every wire message published on any org channel, decoded, in arrival order.

    On one Redis it PSUBSCRIBEs every org channel; on a cluster (sharded
    pub/sub has no patterns) it SSUBSCRIBEs the channels of ``orgs``, each on
    the master serving it. Order holds per org (per shard), not across shards.
    """

    def __init__(self, redis_url: str, orgs: Sequence[str] = COLLECTED_ORGS) -> None:
        self._url, self._orgs = redis_url, tuple(orgs)
        self._clients: list[Any] = []
        self.received: list[tuple[str, wire.RoutedEvent]] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._arrived = asyncio.Event()

    async def __aenter__(self) -> WireCollector:
        target = redisurl.parse(self._url)
        if not target.cluster:
            client = aioredis.Redis.from_url(self._url)
            pubsub = client.pubsub()
            await pubsub.psubscribe(keys.ORG_CHANNEL_PATTERN)
            self._start(client, pubsub)
            return self
        cluster = redisurl.cluster_client(target)
        await cluster.initialize()
        try:
            for org in self._orgs:
                channel = keys.org_channel(org)
                node = cluster.get_node_from_key(channel)
                assert node is not None
                client = aioredis.Redis(host=node.host, port=int(node.port))
                pubsub = client.pubsub()
                await pubsub.ssubscribe(channel)
                self._start(client, pubsub)
        finally:
            await cluster.aclose()
        return self

    def _start(self, client: Any, pubsub: Any) -> None:
        self._clients.append((client, pubsub))
        self._tasks.append(asyncio.create_task(self._listen(pubsub)))

    async def __aexit__(self, *_: object) -> None:
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for client, pubsub in self._clients:
            await pubsub.aclose()
            await client.aclose()

    async def _listen(self, pubsub: Any) -> None:
        async for message in pubsub.listen():
            if message["type"] not in ("pmessage", "smessage"):
                continue
            channel = message["channel"].decode()
            _, batch = wire.decode(message["data"])
            self.received.extend((channel, item) for item in batch)
            self._arrived.set()

    def event_ids(self) -> list[str]:
        return [str(item.event["event_id"]) for _, item in self.received]

    async def wait_for(self, count: int, timeout_s: float = 60.0) -> None:
        """Until at least ``count`` events arrived."""
        async with asyncio.timeout(timeout_s):
            while len(self.received) < count:
                self._arrived.clear()
                await self._arrived.wait()
