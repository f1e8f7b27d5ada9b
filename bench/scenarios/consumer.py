"""Scenario 4: the consumer alone, events/s from Kafka to Redis.

The topics are filled first (the dispatch mix's event types over 10 orgs,
keyed by org, 3 partitions per topic), then one consumer process, pinned to
the server core, starts from the earliest offset and drains them: validate,
route, and one Redis round trip per batch (seen ids, room history, fleet
snapshot, per-org publish) before committing. Events/s and CPU per event
come from its /metrics (`published`) and its own CPU time, over the window
from its first published event to the last. Target: ≥ 50,000 events/s.
"""

from __future__ import annotations

import asyncio
import time

from bench import measure, procs, report, stats
from bench.context import Context
from bench.events import BenchEvent
from bench.pipeline import Broker, Consumer, KafkaPublisher
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common, mix

NAME = "consumer"
EVENTS = 200_000
QUICK_EVENTS = 20_000
CHUNK = 5_000
DRAIN_DEADLINE_S = 180.0
POLL_S = 0.2


async def run(ctx: Context) -> ScenarioResult:
    result = ScenarioResult(NAME, SCENARIO.title, SCENARIO.about)
    count = QUICK_EVENTS if ctx.options.quick else EVENTS
    batch = mix.batch(mix.orgs_for(1000), count)
    broker = Broker()
    try:
        measure.say("starting Kafka")
        bootstrap = await broker.start()
        await prefill(bootstrap, batch)
        consumer = Consumer(
            bootstrap, ctx.redis_url, ctx.plan.server, ctx.log_dir, f"drain-{time.time_ns()}"
        )
        try:
            await consumer.ready()
            row = await drain(consumer, count)
        finally:
            consumer.stop()
    finally:
        broker.stop()
    events_per_s, cpu_us, window, published = row
    measure.say(f"consumer: {published:,.0f} events in {window:.1f}s = {events_per_s:,.0f}/s")
    result.tables.append(
        Table(
            "Consumer throughput, Kafka → Redis",
            ["events", "published", "window s", "events/s", "consumer CPU µs/event", "target"],
            [
                [
                    f"{count:,}",
                    f"{published:,.0f}",
                    report.num(window, 2),
                    report.num(events_per_s, 0),
                    report.num(cpu_us, 1),
                    "≥ 50,000/s",
                ]
            ],
        )
    )
    return result


async def prefill(bootstrap: str, batch: list[BenchEvent]) -> None:
    producer = KafkaPublisher(bootstrap, linger_ms=5)
    await producer.start()
    try:
        for start in range(0, len(batch), CHUNK):
            await producer.burst(batch[start : start + CHUNK])
    finally:
        await producer.close()


async def drain(consumer: Consumer, count: int) -> tuple[float, float, float, float]:
    """Poll /metrics until ``count`` events are out.

    Returns (events/s, consumer CPU µs/event, window seconds, events out).
    """
    deadline = time.monotonic() + DRAIN_DEADLINE_S
    first: tuple[procs.CpuSample, float] | None = None
    last: tuple[procs.CpuSample, float] | None = None
    while time.monotonic() < deadline:
        published = await consumer.handled()
        sample = procs.CpuSample.take([consumer.pid])
        if published > 0 and first is None:
            first = (sample, published)
        if first is not None:
            last = (sample, published)
        if published >= count:
            break
        await asyncio.sleep(POLL_S)
    if first is None or last is None or last[1] <= first[1]:
        return float("nan"), float("nan"), 0.0, last[1] if last else 0.0
    window = last[0].at - first[0].at
    moved = last[1] - first[1]
    cpu = last[0].since(first[0], consumer.pid)
    return (
        stats.rate(int(moved), window),
        stats.cpu_us_per_delivery(cpu, int(moved)),
        window,
        last[1],
    )


SCENARIO = Scenario(
    name=NAME,
    title="Consumer alone: events/s from Kafka to Redis",
    about=common.about(__doc__),
    run=run,
)
