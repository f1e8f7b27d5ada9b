"""Scenario 4: the consumer alone, events/s from Kafka to Redis.

The topics are filled first with the demo fleet's realistic mix (10 orgs
keyed by org, 3 partitions per topic), then one consumer process, pinned to
the server core, starts from the earliest offset and drains them: validate,
route, and one Redis round trip per batch (publish fences, room history,
fleet snapshot, per-org publish) before committing. Events/s, and CPU per event of
the consumer (its own rusage) and of Redis (INFO cpu), over the window from
its first handled event to the last; the fill and the drain are
`bench/consumer_throughput.py`'s. Target: ≥ 50,000 events/s.
"""

from __future__ import annotations

import time

from bench import consumer_throughput, measure, report
from bench.context import Context
from bench.pipeline import Broker, Consumer
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common

NAME = "consumer"
#: Enough for a drain of several seconds: a 3 s window moved by a quarter from run to run.
EVENTS = 400_000
QUICK_EVENTS = 20_000
ORGS = 10
DRAIN_DEADLINE_S = 180.0
TARGET = 50_000


async def run(ctx: Context, result: ScenarioResult) -> None:
    count = QUICK_EVENTS if ctx.options.quick else EVENTS
    broker = Broker()
    try:
        measure.say("starting Kafka")
        bootstrap = await broker.start()
        fill_rate = await consumer_throughput.prefill(bootstrap, count, ORGS)
        measure.say(f"{count:,} events in Kafka ({fill_rate:,.0f}/s produced)")
        group = f"drain-{time.time_ns()}"
        consumer = Consumer(bootstrap, ctx.redis_url, ctx.plan.server, ctx.log_dir, group)
        try:
            figures = await consumer_throughput.drain(
                consumer.port, consumer.pid, ctx.redis_url, count, DRAIN_DEADLINE_S
            )
        finally:
            consumer.stop()
    finally:
        broker.stop()
    rate = figures["events_per_s"]
    measure.say(f"consumer: {figures['handled']:,.0f} events, {rate:,.0f}/s")
    result.tables.append(
        Table(
            "Consumer throughput, Kafka → Redis",
            [
                *("events", "handled", "window s", "events/s"),
                *("consumer CPU µs/event", "Redis CPU µs/event", "target"),
            ],
            [
                [
                    f"{count:,}",
                    f"{figures['handled']:,.0f}",
                    report.num(figures["window_s"], 2),
                    report.num(rate, 0),
                    report.num(figures["consumer_cpu_us"], 1),
                    report.num(figures["redis_cpu_us"], 1),
                    f"≥ {TARGET:,}/s ({'met' if rate >= TARGET else 'not met'})",
                ]
            ],
        )
    )


SCENARIO = Scenario(
    name=NAME,
    title="Consumer alone: events/s from Kafka to Redis",
    about=common.about(__doc__),
    run=run,
)
