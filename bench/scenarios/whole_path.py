"""Scenario 3: the whole path, Kafka → consumer → Redis → server → K clients.

A real KRaft broker, the real consumer (3 partitions per topic, keyed by
org) and K clients of the dispatch mix (scenario 2's orgs, rooms and event
shares) with K the smallest `--clients`. Events are produced at 1,000/s for
the phase, each stamped at produce time, so latency is produce → client
receive. The target is p99 < 10 ms for fleetcast. The Node reference reads
the same Redis the same consumer publishes to. The consumer runs on the
server core beside the server (fleetcast's own processes on one core);
Kafka, Redis, the producer and the load generator share the other. The
broker first takes 20 s of traffic so that its JIT has compiled the hot
paths, as on a broker that has been up for a while. A last phase replays the
same events with no server running while two bare clients (no group, no
work: aiokafka, and librdkafka through confluent-kafka) read the topics beside
the consumer: the floor a consumer starts from here, measured in the same run
as fleetcast's path. The broker runs as a production broker would (C2 JIT, G1,
a 1 GB heap: Kafka's own start-script settings); a last step starts a second
broker with the tests' fast-start flags (C1 only, serial GC, 512 MB) and times
the same events through it, so the report shows the floor both ways.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import AsyncIterator, Sequence

from bench import events, measure, procs, report, stats
from bench.context import Context
from bench.events import BenchEvent
from bench.pipeline import Broker, Consumer, KafkaProbe, KafkaPublisher, RedisTap
from bench.publish import RedisPublisher
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common, mix

NAME = "whole-path"
EVENTS_PER_S = 1000.0
CLIENTS = 1000
#: Traffic before timing: the broker's tail latency settles only after its JIT
#: has compiled the request path (measured: p99 produce -> Redis 22 ms after 3 s
#: of warm-up, 14 ms after 20 s).
WARM_S = 20.0
#: Shortest paced phase: p99 of a 5 s phase (5,000 events) moved by several ms
#: from run to run.
MIN_PHASE_S = 10.0
QUICK_WARM_S = 3.0
#: The bare clients of the Kafka floor (bench.kafka_probe).
PROBE_CLIENTS = ("aiokafka", "librdkafka")


@contextlib.asynccontextmanager
async def kafka_path(ctx: Context) -> AsyncIterator[tuple[Consumer, KafkaPublisher]]:
    """Broker, consumer and producer for one scenario; all stopped on exit."""
    broker = Broker()
    consumer: Consumer | None = None
    producer: KafkaPublisher | None = None
    try:
        measure.say("starting Kafka")
        bootstrap = await broker.start()
        group = f"bench-{int(time.time())}"
        # On the server core: the other core already carries Kafka, Redis, the
        # producer and the clients (about one core of work at 1,000 events/s).
        consumer = Consumer(bootstrap, ctx.redis_url, ctx.plan.server, ctx.log_dir, group)
        await consumer.ready()
        producer = KafkaPublisher(bootstrap)
        await producer.start()
        await warm(consumer, producer, QUICK_WARM_S if ctx.options.quick else WARM_S)
        yield consumer, producer
    finally:
        if producer is not None:
            await producer.close()
        if consumer is not None:
            consumer.stop()
        broker.stop()


async def warm(consumer: Consumer, producer: KafkaPublisher, seconds: float) -> None:
    """Traffic nobody listens to: JIT-compiles the broker before timing."""
    measure.say(f"warming Kafka and the consumer ({seconds:.0f} s)")
    batch = mix.batch(mix.orgs_for(100), round(EVENTS_PER_S * seconds), seed=1)
    await producer.paced(batch, EVENTS_PER_S)
    await consumer.wait_handled(len(batch), within_s=60.0)


async def run(ctx: Context, result: ScenarioResult) -> None:
    opts = ctx.options
    orgs = mix.orgs_for(min(ctx.clients((CLIENTS,))))
    specs = mix.client_specs(orgs)
    shortest = opts.seconds if opts.quick else MIN_PHASE_S
    phase = mix.batch(orgs, round(EVENTS_PER_S * max(opts.seconds, shortest)))
    legs: list[list[str]] = []
    redis = RedisPublisher(ctx.redis_url)
    try:
        async with kafka_path(ctx) as (consumer, kafka), RedisTap(ctx.redis_url) as tap:
            for name in common.redis_fed(ctx, result):
                async with ctx.serving(name) as (server, loadgen):
                    primers = [events.alert(0, org.name) for org in orgs]
                    if not await common.prepare(
                        result, server, loadgen, specs, primers, redis, send=kafka.burst
                    ):
                        continue
                    before = procs.CpuSample.take([consumer.pid])
                    delivery = await measure.deliver(
                        NAME,
                        "paced",
                        server,
                        loadgen,
                        specs,
                        phase,
                        lambda: kafka.paced(phase, EVENTS_PER_S),
                        offered_per_s=EVENTS_PER_S,
                        raw=ctx.raw_dir / f"{NAME}-{name}.npz",
                    )
                    used = procs.CpuSample.take([consumer.pid]).since(before, consumer.pid)
                    result.deliveries.append(delivery)
                    leg = tap.summary(events.current_phase())
                    cpu = stats.cpu_us_per_delivery(used, len(phase))
                    legs.append(leg_row(name, "fleetcast consumer: produce → Redis", leg, cpu))
                    await loadgen.close_all()
            legs += await kafka_floor(ctx, consumer, kafka, tap, phase)
    finally:
        await redis.close()
    result.tables.append(
        Table(
            "Where the time goes: the Kafka leg, in a phase with no server and in each server's",
            [
                *("phase", "measured by", "events", "p50 ms", "p99 ms", "max ms"),
                "its CPU µs/event",
            ],
            legs,
            note="*bare aiokafka* / *bare librdkafka* (confluent-kafka): a consumer with no "
            "group and no work, reading the same topics beside the fleetcast consumer in the "
            "no-server phase (the floor a consumer starts from on this machine); *fast-start "
            "broker*: the same events through a second broker with the tests' JVM flags (C1 "
            "only, serial GC, 512 MB), where the others run Kafka's production settings (C2, "
            "G1, 1 GB); *fleetcast consumer*: a pub/sub "
            "listener in the benchmark timing each event's arrival in Redis. The rest of the "
            "produce → client latency above is the server's and the clients'.",
        )
    )
    result.notes.append(
        f"{len(specs):,} clients in {len(orgs)} orgs; "
        f"{EVENTS_PER_S:,.0f} events/s produced to Kafka"
    )


async def kafka_floor(
    ctx: Context,
    consumer: Consumer,
    kafka: KafkaPublisher,
    tap: RedisTap,
    batch: Sequence[BenchEvent],
) -> list[list[str]]:
    """The phase's events with no server running, timed by a bare client and at Redis.

    Run last, on the warmest broker. The probe sits on the server core (idle
    in this phase but for the consumer), so the machine carries what it
    carries in the servers' phases minus the server and its clients.
    """
    measure.say("timing the Kafka leg with no server (bare clients beside the consumer)")
    number = events.new_phase()
    before = procs.CpuSample.take([consumer.pid])
    bare = await probed(ctx, kafka, batch, number, "no server")
    await tap.wait_seen(number, len(batch), within_s=10.0)
    used = procs.CpuSample.take([consumer.pid]).since(before, consumer.pid)
    fleetcast = tap.summary(number)
    return [
        *bare,
        leg_row(
            "no server",
            "fleetcast consumer: produce → Redis",
            fleetcast,
            stats.cpu_us_per_delivery(used, len(batch)),
        ),
        *await fast_start_floor(ctx, batch),
    ]


async def probed(
    ctx: Context, kafka: KafkaPublisher, batch: Sequence[BenchEvent], number: int, phase: str
) -> list[list[str]]:
    """``batch`` produced at the scenario's rate, read by each bare client; their rows."""
    probes = [
        KafkaProbe(kafka.bootstrap, client, number, len(batch), ctx.plan.server, ctx.log_dir)
        for client in PROBE_CLIENTS
    ]
    try:
        for probe in probes:
            await probe.ready()
        await kafka.paced(batch, EVENTS_PER_S)
        rows = []
        for probe in probes:
            latency, cpu = await probe.result()
            rows.append(leg_row(phase, f"bare {probe.client}: produce → consume", latency, cpu))
        return rows
    finally:
        for probe in probes:
            probe.stop()


async def fast_start_floor(ctx: Context, batch: Sequence[BenchEvent]) -> list[list[str]]:
    """The same events through a broker with the tests' fast-start JVM flags."""
    measure.say("timing the Kafka leg on a fast-start broker (the tests' JVM flags)")
    broker = Broker(fast_start=True)
    producer: KafkaPublisher | None = None
    try:
        producer = KafkaPublisher(await broker.start())
        await producer.start()
        warmup = mix.batch(mix.orgs_for(100), round(EVENTS_PER_S * QUICK_WARM_S), seed=2)
        await producer.paced(warmup, EVENTS_PER_S)
        return await probed(ctx, producer, batch, events.new_phase(), "fast-start broker")
    finally:
        if producer is not None:
            await producer.close()
        broker.stop()


def leg_row(phase: str, measured_by: str, leg: stats.LatencySummary, cpu: float) -> list[str]:
    return [
        phase,
        measured_by,
        f"{leg.count:,}",
        *(report.num(v / 1000, 2) for v in (leg.p50, leg.p99, leg.max)),
        report.num(cpu),
    ]


SCENARIO = Scenario(
    name=NAME,
    title="Whole path: Kafka → consumer → Redis → server → K clients",
    about=common.about(__doc__),
    run=run,
)
