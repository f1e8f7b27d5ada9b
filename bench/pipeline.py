"""The Kafka side of the whole path: a real broker, the real consumer, a producer.

The broker comes from ``fleetcast.devtools.kafka`` (tuned for throughput, not
for a quick start), the consumer is ``python -m fleetcast.consumer`` of this
checkout, and the producer writes envelopes as a domain service would: key =
org id, topic from the event catalog, value stamped with its produce time.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import aiohttp
import orjson
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from bench import procs, prom, publish, servers, stats
from bench.events import BenchEvent, kafka_value
from bench.loadgen import codec
from fleetcast.devtools import kafka
from fleetcast.protocol import control, events, keys

TOPICS = (*events.DEFAULT_TOPICS, events.DEFAULT_DLQ_TOPIC, control.DEFAULT_TOPIC)
PARTITIONS = 3
#: Consumer counters that together say an event left its hands.
HANDLED = ("published", "duplicates", "unrouted", "dead_lettered")


class Broker:
    """A single-node KRaft broker with fleetcast's topics; :meth:`stop` removes its data."""

    def __init__(self, *, fast_start: bool = False) -> None:
        #: False: tuned as a production broker runs (C2 JIT, G1); True: the tests' fast start.
        self.fast_start = fast_start
        self.broker: kafka.KafkaBroker | None = None

    @property
    def bootstrap(self) -> str:
        assert self.broker is not None
        return self.broker.bootstrap

    async def start(self) -> str:
        self.broker = kafka.KafkaBroker.create(fast_start=self.fast_start)
        await asyncio.to_thread(self.broker.start)
        await kafka.create_topics(self.broker.bootstrap, TOPICS, partitions=PARTITIONS)
        return self.broker.bootstrap

    def stop(self) -> None:
        if self.broker is not None:
            self.broker.close()
            self.broker = None


class Consumer:
    """``python -m fleetcast.consumer``, pinned to ``cpus``, with its /metrics."""

    def __init__(
        self, bootstrap: str, redis_url: str, cpus: Sequence[int] | None, log_dir: Path, group: str
    ) -> None:
        self.port = procs.free_port()
        env = {
            "FLEETCAST_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "FLEETCAST_REDIS_URL": redis_url,
            "FLEETCAST_KAFKA_GROUP_ID": group,
            "FLEETCAST_KAFKA_AUTO_OFFSET_RESET": "earliest",
            "FLEETCAST_CONSUMER_HOST": "127.0.0.1",
            "FLEETCAST_CONSUMER_PORT": str(self.port),
            "FLEETCAST_LOG_LEVEL": "WARNING",
        }
        argv = procs.pinned([sys.executable, "-m", "fleetcast.consumer"], cpus)
        self.proc = procs.Proc("consumer", argv, env=env, log=log_dir / f"consumer-{group}.log")

    @property
    def pid(self) -> int:
        return self.proc.pid

    async def ready(self) -> None:
        await procs.wait_port(self.proc, self.port, servers.START_TIMEOUT_S)
        await servers.wait_http_ok(self.proc, f"http://127.0.0.1:{self.port}/ready")

    async def metric(self, name: str) -> float:
        """Sum of a counter over its labels (``fleetcast_consumer_<name>_total``)."""
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}/metrics") as resp,
        ):
            return prom.total(prom.samples(await resp.text()), f"fleetcast_consumer_{name}_total")

    async def handled(self) -> float:
        """Events that left the consumer's hands: published, or dropped for a reason."""
        return sum([await self.metric(name) for name in HANDLED])

    async def wait_handled(self, count: float, within_s: float) -> float:
        """Poll until ``count`` events are handled or ``within_s`` passed; returns the count."""
        end = time.monotonic() + within_s
        done = await self.handled()
        while done < count and time.monotonic() < end:
            await asyncio.sleep(0.2)
            done = await self.handled()
        return done

    def stop(self) -> None:
        self.proc.stop()


class KafkaProbe:
    """``python -m bench.kafka_probe`` for one phase: Kafka's own produce → consume latency.

    Whatever happens, the caller ends it with :meth:`stop`.
    """

    def __init__(
        self,
        bootstrap: str,
        client: str,
        phase: int,
        count: int,
        cpus: Sequence[int] | None,
        log_dir: Path,
    ) -> None:
        self.client = client
        self.out = log_dir / f"kafka-probe-{client}-{phase}.json"
        self.out.unlink(missing_ok=True)
        self.ready_file = log_dir / f"{self.out.name}.ready"
        self.ready_file.unlink(missing_ok=True)
        self.within_s = count / 100 + 30.0  # far longer than a phase at any paced rate
        argv = [sys.executable, "-m", "bench.kafka_probe", bootstrap, client, str(phase)]
        argv = procs.pinned([*argv, str(count), str(self.within_s), str(self.out)], cpus)
        self.proc = procs.Proc(
            f"kafka-probe-{client}", argv, log=log_dir / f"kafka-probe-{client}.log"
        )

    async def ready(self) -> None:
        await self._wait_for(self.ready_file, servers.START_TIMEOUT_S)

    async def result(self) -> tuple[stats.LatencySummary, float]:
        """Its latency summary (µs) and its CPU µs per event, once it has written them."""
        await self._wait_for(self.out, self.within_s + 10.0)
        found = orjson.loads(await asyncio.to_thread(self.out.read_bytes))
        latencies = found["latency_us"]
        return stats.summarize(latencies), stats.cpu_us_per_delivery(found["cpu_s"], len(latencies))

    def stop(self) -> None:
        self.proc.stop()

    async def _wait_for(self, path: Path, within_s: float) -> None:
        end = time.monotonic() + within_s
        while True:
            alive = self.proc.alive()  # before the check: it may write the file and exit
            if await asyncio.to_thread(path.exists):
                return
            if not alive or time.monotonic() > end:
                raise RuntimeError(f"kafka probe gave no {path.name}:\n{self.proc.tail()}")
            await asyncio.sleep(0.1)


class RedisTap:
    """Listens to every org channel as a gateway would, timing each event's arrival in Redis.

    In the whole path this splits produce → client latency into the Kafka +
    consumer leg (produce → Redis publish) and the rest (server and clients).
    """

    def __init__(self, url: str) -> None:
        self.client = aioredis.Redis.from_url(url)
        self.pubsub = self.client.pubsub()
        self.seen: dict[int, list[float]] = {}
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> RedisTap:
        await self.pubsub.psubscribe(keys.ORG_CHANNEL_PATTERN)
        self._task = asyncio.create_task(self._listen())
        return self

    async def __aexit__(self, *_: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.pubsub.aclose()  # type: ignore[no-untyped-call]  # untyped in redis-py
        await self.client.aclose()

    async def _listen(self) -> None:
        while True:
            message = await self.pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None:
                continue
            now = time.monotonic_ns()
            for probe in codec.PROBE.finditer(message["data"]):
                phase = int(probe[1])
                self.seen.setdefault(phase, []).append((now - int(probe[3])) / 1000)
            self._arrived.set()

    async def wait_seen(self, phase: int, count: int, within_s: float) -> None:
        """Until ``count`` events of ``phase`` reached Redis, or ``within_s`` passed."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                while len(self.seen.get(phase, ())) < count:
                    self._arrived.clear()
                    await self._arrived.wait()

    def summary(self, phase: int) -> stats.LatencySummary:
        """Produce → Redis latency (µs) of the events of ``phase``."""
        return stats.summarize(self.seen.get(phase, []))


class KafkaPublisher:
    """Produces benchmark events; each send gets a fresh event id (the consumer dedupes ids)."""

    def __init__(self, bootstrap: str, *, linger_ms: int = 0) -> None:
        self.bootstrap = bootstrap
        self.producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap, linger_ms=linger_ms, acks=1, max_batch_size=256 * 1024
        )
        self._sends = 0

    async def start(self) -> None:
        await self.producer.start()

    async def close(self) -> None:
        await self.producer.stop()

    async def burst(self, batch: Sequence[BenchEvent]) -> int:
        await self._send(batch)
        await self.producer.flush()
        return len(batch)

    async def paced(
        self,
        batch: Sequence[BenchEvent],
        rate_per_s: float,
        until: Callable[[], bool] | None = None,
    ) -> int:
        """Produce ``batch`` at ``rate_per_s`` events per second (catching up when late)."""
        sent = await publish.pace(batch, rate_per_s, self._send, until)
        await self.producer.flush()
        return sent

    async def _send(self, batch: Sequence[BenchEvent]) -> None:
        self._sends += 1
        for event in batch:
            value = kafka_value(event, event_id=f"{event.envelope['event_id']}-{self._sends}")
            topic = events.CATALOG[event.envelope["event_type"]]
            await self.producer.send(topic, value, key=event.org.encode())
