"""SIGTERM ends the consumer within its grace period, whatever its peers are doing.

Kafka and Redis are taken away in both ways they go in production: stopped
(connections refused at once) and frozen with SIGSTOP (a partition or a hung
host: requests hang until some timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import time
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from fleetcast.devtools import kafka
from fleetcast.devtools.redis import RedisServer
from tests.harness.kafka import (
    ConsumerProcess,
    KafkaTopics,
    WireCollector,
    consumer_settings,
    produce_events,
    settings_env,
)
from tests.integration.consumer_support import alerts, eventually, frozen, ready, redis_pid

pytestmark = pytest.mark.integration

#: The consumer pod's terminationGracePeriodSeconds (operator/rendering.py).
GRACE_S = 30.0


@pytest.mark.parametrize("how", ["stopped", "frozen"])
async def test_sigterm_with_kafka_and_redis_gone_exits_within_the_grace_period(
    how: str,
    kafka_broker: kafka.KafkaBroker,
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    own_redis: RedisServer,
    tmp_path: Path,
) -> None:
    settings = consumer_settings(kafka_topics, own_redis.url)
    consumer = ConsumerProcess(settings_env(settings), tmp_path / "consumer.log")
    sent = alerts("before", 50)
    async with WireCollector(own_redis.url) as wire_in:
        await consumer.start()
        try:
            await produce_events(kafka_producer, kafka_topics, sent)
            await wire_in.wait_for(len(sent))
        except BaseException:
            consumer.kill()
            raise
    assert kafka_broker.process is not None
    with contextlib.ExitStack() as gone:
        if how == "frozen":
            gone.enter_context(frozen(redis_pid(own_redis)))
            gone.enter_context(frozen(kafka_broker.process.pid))
        else:
            own_redis.stop()
            gone.callback(kafka_broker.start)
            await asyncio.to_thread(kafka_broker.stop)
        await asyncio.sleep(3.0)  # the consumer has noticed: retrying, reconnecting
        started = time.monotonic()
        try:
            status = await consumer.terminate(timeout_s=GRACE_S)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            consumer.kill()
        took = time.monotonic() - started
    await eventually(lambda: broker_answers(kafka_broker.bootstrap), what="the broker back")
    assert status is not None, f"still running {GRACE_S:.0f}s after SIGTERM\n{consumer.log_tail()}"
    assert status == 0, consumer.log_tail()
    assert took < settings.shutdown_deadline_s
    print(f"SIGTERM with Kafka and Redis {how}: exit {status} after {took:.1f}s")


async def broker_answers(bootstrap: str) -> bool:
    """The broker serves metadata again (after SIGCONT it takes a moment): later tests need it."""
    with contextlib.suppress(KafkaError, OSError):
        return bool(await kafka.list_topics(bootstrap))
    return False


async def test_sigterm_during_start_up_against_a_broker_that_never_answers(
    own_redis: RedisServer, tmp_path: Path
) -> None:
    """A black hole: connections are accepted, requests never answered (a hung host)."""

    async def swallow(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while await reader.read(65536):
                pass
        writer.close()

    hole = await asyncio.start_server(swallow, "127.0.0.1", 0)
    port = hole.sockets[0].getsockname()[1]
    settings = consumer_settings(KafkaTopics(f"127.0.0.1:{port}", "black-hole"), own_redis.url)
    consumer = ConsumerProcess(settings_env(settings), tmp_path / "consumer.log")
    async with hole:
        consumer.spawn()
        try:
            await eventually(lambda: answers(consumer.port), what="the consumer's HTTP server")
            await asyncio.sleep(1.0)  # inside the admin client's first request by now
            started = time.monotonic()
            status = await consumer.terminate(timeout_s=GRACE_S)
            took = time.monotonic() - started
        finally:
            consumer.kill()
    assert status == 0, consumer.log_tail()
    assert took < settings.shutdown_step_timeout_s, consumer.log_tail()
    print(f"SIGTERM during start-up against a black-hole broker: exit {status} after {took:.1f}s")


async def answers(port: int) -> bool:
    with contextlib.suppress(OSError):
        await ready(port)
        return True
    return False
