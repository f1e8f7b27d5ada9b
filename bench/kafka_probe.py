"""A bare aiokafka consumer timing produce → consume: Kafka's own share of the whole path.

The whole-path scenario runs it in a phase of its own, beside the fleetcast
consumer and reading the same topics, so the report can put side by side, for
the same events at the same moment, what the broker and a Python Kafka client
cost before fleetcast does any work. It reads without a group (it commits
nothing and takes no partition from the consumer's group), from the end of
each partition, with the consumer's fetch settings.

    python -m bench.kafka_probe BOOTSTRAP PHASE COUNT WITHIN_S OUT

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
                found = codec.PROBE.search(record.value or b"")
                if found is not None and int(found[1]) == phase:
                    latencies.append((now - int(found[3])) / 1000)
    return latencies


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
    bootstrap, phase, count, within_s, out = sys.argv[1:]
    result = asyncio.run(
        measure(bootstrap, int(phase), int(count), float(within_s), Path(f"{out}.ready"))
    )
    Path(out).write_bytes(result)
