"""A bare Kafka consumer timing produce → consume: Kafka's own share of the whole path.

The whole-path scenario runs it in a phase of its own, beside the fleetcast
consumer and reading the same topics, so the report can put side by side, for
the same events at the same moment, what the broker and a Python Kafka client
cost before fleetcast does any work. It reads without a group (it commits
nothing and takes no partition from the consumer's group), from the end of
each partition, with the consumer's fetch settings.

Two clients: ``aiokafka`` (the one fleetcast's consumer is built on) and
``librdkafka`` (confluent-kafka's C client, its fetch loop in threads of its
own): the same events read by both say whether a C client would change the
Kafka leg's latency or its CPU by a large factor.

    python -m bench.kafka_probe BOOTSTRAP CLIENT PHASE COUNT WITHIN_S OUT

It creates ``OUT.ready`` once positioned, then writes ``OUT`` (JSON: each
latency in µs and its own CPU seconds meanwhile) after ``COUNT`` events of
benchmark phase ``PHASE`` or ``WITHIN_S`` seconds, whichever comes first.
"""

from __future__ import annotations

import asyncio
import resource
import sys
import time
from pathlib import Path

import confluent_kafka
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.loadgen import codec
from bench.pipeline import PARTITIONS
from fleetcast.consumer.settings import Settings
from fleetcast.protocol import events

#: The fleetcast consumer's defaults, so both pay the same fetch round trips.
FETCH = {
    "fetch_min_bytes": Settings.model_fields["kafka_fetch_min_bytes"].default,
    "fetch_max_wait_ms": Settings.model_fields["kafka_fetch_max_wait_ms"].default,
    "max_partition_fetch_bytes": 4 * 1024 * 1024,
}


CLIENTS = ("aiokafka", "librdkafka")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def positioned(bootstrap: str) -> AIOKafkaConsumer:
    """A started consumer assigned every fleetcast partition, at its end."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, **FETCH)
    await consumer.start()
    assigned = [TopicPartition(t, p) for t in events.DEFAULT_TOPICS for p in range(PARTITIONS)]
    consumer.assign(assigned)
    await consumer.seek_to_end(*assigned)
    for tp in assigned:
        await consumer.position(tp)  # resolves the end offset now, before the phase starts
    return consumer


async def collect(
    consumer: AIOKafkaConsumer, phase: int, count: int, within_s: float
) -> list[float]:
    """Produce → consume latencies (µs) of the phase's events, as the client hands them over."""
    latencies: list[float] = []
    end = time.monotonic() + within_s
    while len(latencies) < count and time.monotonic() < end:
        fetched = await consumer.getmany(timeout_ms=200)
        now = time.monotonic_ns()
        for records in fetched.values():
            for record in records:
                latency = phase_latency_us(record.value, phase, now)
                if latency is not None:
                    latencies.append(latency)
    return latencies


def phase_latency_us(value: bytes | None, phase: int, now_ns: int) -> float | None:
    """Produce → consume µs of a benchmark event of ``phase`` (None for any other record)."""
    found = codec.PROBE.search(value or b"")
    if found is None or int(found[1]) != phase:
        return None
    return (now_ns - int(found[3])) / 1000


def rdkafka_positioned(bootstrap: str) -> confluent_kafka.Consumer:
    """A librdkafka consumer assigned every fleetcast partition at its current end."""
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": "bench-kafka-probe",  # required by the client; nothing is committed
            "enable.auto.commit": False,
            "fetch.min.bytes": FETCH["fetch_min_bytes"],
            "fetch.wait.max.ms": FETCH["fetch_max_wait_ms"],
            "max.partition.fetch.bytes": FETCH["max_partition_fetch_bytes"],
        }
    )
    assigned = []
    for topic in events.DEFAULT_TOPICS:
        for partition in range(PARTITIONS):
            tp = confluent_kafka.TopicPartition(topic, partition)
            _, high = consumer.get_watermark_offsets(tp, timeout=10.0)
            assigned.append(confluent_kafka.TopicPartition(topic, partition, high))
    consumer.assign(assigned)
    return consumer


def rdkafka_measure(bootstrap: str, phase: int, count: int, within_s: float, ready: Path) -> bytes:
    """As :func:`measure`, with librdkafka (synchronous: the probe is a process of its own)."""
    consumer = rdkafka_positioned(bootstrap)
    try:
        ready.touch()
        before = cpu_seconds()
        latencies: list[float] = []
        end = time.monotonic() + within_s
        while len(latencies) < count and time.monotonic() < end:
            # poll, not consume(n): consume waits until n messages or the timeout,
            # which would time the batch, not the message.
            message = consumer.poll(0.2)
            if message is not None and message.error() is None:
                latency = phase_latency_us(message.value(), phase, time.monotonic_ns())
                if latency is not None:
                    latencies.append(latency)
        used = cpu_seconds() - before
    finally:
        consumer.close()
    return orjson.dumps({"latency_us": latencies, "cpu_s": used})


async def measure(bootstrap: str, phase: int, count: int, within_s: float, ready: Path) -> bytes:
    """The phase's latencies and CPU as JSON, once ``ready`` told the benchmark to produce."""
    consumer = await positioned(bootstrap)
    try:
        await asyncio.to_thread(ready.touch)
        before = cpu_seconds()
        latencies = await collect(consumer, phase, count, within_s)
        used = cpu_seconds() - before
    finally:
        await consumer.stop()
    return orjson.dumps({"latency_us": latencies, "cpu_s": used})


if __name__ == "__main__":
    bootstrap, client, phase, count, within_s, out = sys.argv[1:]
    args = (bootstrap, int(phase), int(count), float(within_s), Path(f"{out}.ready"))
    if client == "librdkafka":
        result = rdkafka_measure(*args)
    elif client == "aiokafka":
        result = asyncio.run(measure(*args))
    else:
        raise SystemExit(f"kafka_probe: unknown client {client!r} (one of {CLIENTS})")
    Path(out).write_bytes(result)
