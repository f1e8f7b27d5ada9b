"""Every service exits in time on SIGTERM, whatever state its peers are in.

The gateway, the consumer and the demo fleet run as processes (as `make run`
and a pod run them) against a private Redis and a private Kafka broker that
the test kills (SIGKILL: gone) or freezes (SIGSTOP: connections open, no
answer) before it sends SIGTERM. The bound is the time `make run` gives a
service before it SIGKILLs it (RunSettings.stop_grace_s, 15 s; pods get more):
a service that needs longer loses its in-flight work to a SIGKILL everywhere.
The gateway has a tighter one of its own: its drain setting, plus a margin.
Each case prints how long the exit took (`-s`).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import pytest
from aiokafka.errors import KafkaError

from fleetcast.devtools import demo, kafka
from fleetcast.devtools.redis import RedisServer
from fleetcast.devtools.run import RunSettings
from tests.harness.gateway import SECRET, Client, GatewayProcess, make_token
from tests.harness.kafka import (
    ConsumerProcess,
    KafkaTopics,
    consumer_settings,
    make_producer,
    produce_events,
    scrape,
    settings_env,
)

pytestmark = pytest.mark.integration

#: What `make run` waits after SIGTERM before SIGKILL (the consumer's and the demo's bound).
GRACE_S: Final = RunSettings.model_fields["stop_grace_s"].default
#: The consumer's own bound for the batch in hand; well inside GRACE_S.
CONSUMER_SHUTDOWN_TIMEOUT_S: Final = 3.0
GATEWAY_DRAIN_S: Final = 2.0
#: Interpreter teardown and the last loop turns after the gateway's drain and cleanup.
GATEWAY_MARGIN_S: Final = 3.0
ORG: Final = "org-metro"


@pytest.fixture(scope="module")
def broker() -> Iterator[kafka.KafkaBroker]:
    """A broker of this module's own: its tests kill and freeze it."""
    own = kafka.KafkaBroker.create()
    own.start()
    try:
        yield own
    finally:
        own.close()


@dataclass
class Peers:
    """The services' peers, and what the test did to them (undone at teardown)."""

    broker: kafka.KafkaBroker
    redis: RedisServer
    frozen: list[int] = field(default_factory=list)

    def kill_kafka(self) -> None:
        self.broker.kill()

    def kill_redis(self) -> None:
        self.redis.stop()

    def freeze_kafka(self) -> None:
        assert self.broker.process is not None
        self._freeze(self.broker.process.pid)

    def freeze_redis(self) -> None:
        assert self.redis.pid is not None
        self._freeze(self.redis.pid)

    def _freeze(self, pid: int) -> None:
        os.kill(pid, signal.SIGSTOP)
        self.frozen.append(pid)

    def thaw(self) -> None:
        for pid in self.frozen:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


async def answering(broker: kafka.KafkaBroker, within_s: float = 90.0) -> None:
    """Until the broker serves metadata: a thawed one takes a while to come back."""
    if not broker.running:  # an earlier test killed it: same port, same data
        await asyncio.to_thread(broker.start)
    deadline = time.monotonic() + within_s
    while True:
        try:
            await asyncio.wait_for(kafka.list_topics(broker.bootstrap), timeout=10)
            return
        except (KafkaError, OSError, TimeoutError):
            assert time.monotonic() < deadline, f"broker not back in {within_s:.0f}s"
            await asyncio.sleep(0.5)


@pytest.fixture
async def peers(broker: kafka.KafkaBroker) -> AsyncIterator[Peers]:
    await answering(broker)
    redis = RedisServer().start()
    made = Peers(broker, redis)
    try:
        yield made
    finally:
        made.thaw()
        redis.cleanup()


def report(service: str, case: str, seconds: float) -> None:
    print(f"\nSIGTERM [{service}: {case}]: exited after {seconds:.2f}s")


async def exit_time(process: subprocess.Popen[bytes], bound_s: float, log: Path) -> float:
    """SIGTERM, then seconds until it exits; SIGKILL and fail past ``bound_s``."""
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.to_thread(process.wait, bound_s)
    except subprocess.TimeoutExpired:
        tail = kill(process, log)
        raise AssertionError(f"still running {bound_s:.0f}s after SIGTERM:\n{tail}") from None
    return time.monotonic() - started


def kill(process: subprocess.Popen[bytes], log: Path) -> str:
    """SIGKILL what did not stop; the tail of its log, to say where it hung."""
    process.kill()
    process.wait(10)
    return log.read_text(errors="replace")[-3000:]


# --- the gateway -------------------------------------------------------------------


@pytest.mark.parametrize("fault", ["redis gone", "redis frozen"])
async def test_gateway_exits_within_its_drain_on_sigterm(
    peers: Peers, tmp_path: Path, fault: str
) -> None:
    env = {
        "FLEETCAST_REDIS_URL": peers.redis.url,
        "FLEETCAST_JWT_SECRET": SECRET,
        "FLEETCAST_DRAIN_SECONDS": str(GATEWAY_DRAIN_S),
        "FLEETCAST_LOG_LEVEL": "WARNING",
    }
    gateway = GatewayProcess(env, tmp_path).start()
    client = Client(gateway.url)
    try:
        await gateway.wait_ready()
        assert await client.connect(make_token("disp-1", ORG))
        (peers.kill_redis if fault == "redis gone" else peers.freeze_redis)()
        await asyncio.sleep(1.0)  # it notices: pub/sub and canary fail or hang
        assert gateway.proc is not None
        took = await exit_time(gateway.proc, GATEWAY_DRAIN_S + GATEWAY_MARGIN_S, gateway.log_path)
        report("gateway", fault, took)
    finally:
        await client.close()
        gateway.stop()


# --- the consumer ------------------------------------------------------------------


async def produce(topics: KafkaTopics, count: int) -> None:
    producer = make_producer(topics.bootstrap)
    await producer.start()
    try:
        fleet = demo.Fleet(orgs=1, units_per_org=10, seed=3)
        await produce_events(producer, topics, [fleet.next() for _ in range(count)])
    finally:
        await producer.stop()


def total(metrics: dict[str, float], name: str) -> float:
    return sum(value for key, value in metrics.items() if key.split("{")[0] == name)


async def wait_metric(port: int, name: str, least: float, within_s: float = 60.0) -> None:
    deadline = time.monotonic() + within_s
    while total(await scrape(port), name) < least:
        assert time.monotonic() < deadline, f"{name} < {least} after {within_s:.0f}s"
        await asyncio.sleep(0.1)


CONSUMER_FAULTS: Final = {
    "kafka gone": ("kill_kafka",),
    "kafka frozen": ("freeze_kafka",),
    "redis gone, batch in hand": ("kill_redis", "produce"),
    "redis frozen, batch in hand": ("freeze_redis", "produce"),
    "kafka and redis gone, batch in hand": ("kill_redis", "produce", "kill_kafka"),
}


@pytest.mark.parametrize("fault", list(CONSUMER_FAULTS))
async def test_consumer_exits_within_the_grace_on_sigterm(
    peers: Peers, tmp_path: Path, fault: str
) -> None:
    topics = KafkaTopics(peers.broker.bootstrap, f"grace-{os.getpid()}-{time.monotonic_ns()}")
    await topics.create(partitions=1)
    settings = consumer_settings(
        topics, peers.redis.url, shutdown_timeout_s=CONSUMER_SHUTDOWN_TIMEOUT_S
    )
    consumer = ConsumerProcess(settings_env(settings), tmp_path / "consumer.log")
    await consumer.start()
    try:
        await produce(topics, 10)
        await wait_metric(consumer.port, "fleetcast_consumer_published_total", 10)
        for step in CONSUMER_FAULTS[fault]:
            if step == "produce":  # the consumer reads them and cannot publish them
                await produce(topics, 10)
                await wait_metric(consumer.port, "fleetcast_consumer_consumed_total", 20)
            else:
                getattr(peers, step)()
        await asyncio.sleep(1.0)  # it notices: requests fail or hang
        assert consumer.process is not None
        took = await exit_time(consumer.process, GRACE_S, consumer.log_path)
        report("consumer", fault, took)
    finally:
        consumer.kill()


# --- the demo fleet ----------------------------------------------------------------


def start_demo(bootstrap: str, log: Path) -> subprocess.Popen[bytes]:
    args = ["--bootstrap", bootstrap, "--rate", "100", "--orgs", "1"]
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fleetcast.devtools.demo", *args],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.mark.parametrize("fault", ["kafka gone", "kafka frozen"])
async def test_demo_exits_within_the_grace_on_sigterm(
    peers: Peers, tmp_path: Path, fault: str
) -> None:
    log = tmp_path / "demo.log"
    process = start_demo(peers.broker.bootstrap, log)
    try:
        deadline = time.monotonic() + 60
        while "events/s for" not in log.read_text():  # its producer started
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            await asyncio.sleep(0.1)
        (peers.kill_kafka if fault == "kafka gone" else peers.freeze_kafka)()
        await asyncio.sleep(1.0)
        took = await exit_time(process, GRACE_S, log)
        report("demo", fault, took)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
