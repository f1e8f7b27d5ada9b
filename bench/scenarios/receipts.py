"""Scenario: receipts at the city-peak alert rate, what they cost the gateway and Kafka.

One org of a large city: 200 consoles and 1,000 field units on one gateway
process (its own core), 30 alerts a minute (the city-peak rate of the
workload notes) produced to Kafka through the real consumer. Two phases on
the same traffic, each with a fresh gateway: receipts off
(FLEETCAST_RECEIPT_EVENTS empty) and on, where every unit answers each alert
delivered, displayed and acknowledged and every console delivered and
displayed (as the CLI client and the console do), the gateway writes its
``sent`` facts, and the consumer routes every receipt back to the alert's
sender (one of 10 consoles). Gateway and consumer CPU over the phase, and
what ``fleet.receipts`` holds afterwards (records and bytes, read back from
the broker): the cost of receipts is the difference.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer

from bench import events, measure, procs, report, servers, tokens
from bench.city.answering import CONSOLE_KINDS, UNIT_KINDS, AnsweringClient, Answers
from bench.city.client import MapClient, Tally, connect_all
from bench.context import Context
from bench.pipeline import Consumer, KafkaPublisher
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common
from bench.scenarios.whole_path import kafka_path
from fleetcast.protocol import receipts

NAME = "receipts"
ORG = "org-city"
CONSOLES, FIELD_UNITS, SENDERS = 200, 1000, 10
QUICK_CONSOLES, QUICK_FIELD_UNITS = 50, 250
ALERTS_PER_MIN = 30.0
SECONDS, QUICK_SECONDS = 60.0, 12.0
#: After the last alert: the flush of sent facts (200 ms), the consumer's path back.
DRAIN_S = 4.0
#: Reading fleet.receipts back (~50 MB after a full phase) on the busy core.
READ_BACK_S = 300.0


@dataclass(slots=True)
class Phase:
    mode: str
    alerts: int
    window_s: float
    gateway_cpu_s: float
    consumer_cpu_s: float
    consoles: Answers
    units: Answers
    alert_p99_ms: float
    kafka_records: int = 0
    kafka_bytes: int = 0
    sent_records: int = 0


def alerts(seconds: float) -> list[events.BenchEvent]:
    count = max(1, round(ALERTS_PER_MIN / 60 * seconds))
    built = []
    for seq in range(count):
        alert = events.alert(seq, ORG)
        data = {**alert.envelope["data"], "sent_by": f"console-{seq % SENDERS}"}
        built.append(events.make(seq, "alert_created", ORG, data))
    return built


def clients(consoles: int, units: int) -> tuple[list[AnsweringClient], Answers, Answers, Tally]:
    tally, on_consoles, on_units = Tally(), Answers(), Answers()
    made = [
        AnsweringClient(
            tokens.token(f"console-{i}", ORG, ["dispatcher"]), (), tally, on_consoles, CONSOLE_KINDS
        )
        for i in range(consoles)
    ]
    made += [
        AnsweringClient(
            tokens.token(f"unit-{i}", ORG, ["field_unit"]), (), tally, on_units, UNIT_KINDS
        )
        for i in range(units)
    ]
    return made, on_consoles, on_units, tally


async def phase(
    ctx: Context, mode: str, consumer: Consumer, kafka: KafkaPublisher, sizes: tuple[int, int]
) -> Phase:
    env = {"FLEETCAST_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap}
    if mode == "off":
        env["FLEETCAST_RECEIPT_EVENTS"] = "[]"
    server = servers.FleetcastGateway(
        ctx.redis_url, ctx.plan.server, ctx.log_dir, gateway_id=f"bench-receipts-{mode}",
        extra_env=env,
    )  # fmt: skip
    everyone, on_consoles, on_units, tally = clients(*sizes)
    try:
        await server.start()
        connected = await connect_all(list[MapClient](everyone), server.port)
        measure.say(f"{NAME} {mode}: {connected}/{len(everyone)} connected")
        await asyncio.sleep(measure.SETTLE_S)
        seconds = QUICK_SECONDS if ctx.options.quick else SECONDS
        batch = alerts(seconds)
        for client in everyone:
            client.counting = True
        gateway = server.pid
        before = procs.CpuSample.take([gateway, consumer.pid])
        sent = await kafka.paced(batch, len(batch) / seconds)
        await asyncio.sleep(DRAIN_S)
        after = procs.CpuSample.take([gateway, consumer.pid])
    finally:
        for client in everyone:
            client.close()
        server.stop()
    latencies = sorted(tally.alert_latency_us)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] / 1000 if latencies else 0
    return Phase(
        mode, sent, after.at - before.at, after.since(before, gateway),
        after.since(before, consumer.pid), on_consoles, on_units, p99,
    )  # fmt: skip


async def topic_size(bootstrap: str, topic: str) -> tuple[int, int, int]:
    """Records, key + value bytes and ``sent`` records in ``topic``, read from its start."""
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, max_partition_fetch_bytes=8 << 20
    )
    await reader.start()
    try:
        async with asyncio.timeout(READ_BACK_S):
            while not reader.assignment():  # noqa: ASYNC110 (no event for a group-less assignment)
                await asyncio.sleep(0.05)
            parts = sorted(reader.assignment())
            ends = await reader.end_offsets(parts)
            await reader.seek_to_beginning(*parts)
            records = size = sent = 0
            while any([await reader.position(tp) < ends[tp] for tp in parts]):
                for batch in (await reader.getmany(*parts, timeout_ms=500)).values():
                    for record in batch:
                        records += 1
                        size += len(record.key or b"") + len(record.value or b"")
                        sent += b'"kind":"sent"' in (record.value or b"")
        return records, size, sent
    finally:
        await reader.stop()


async def run(ctx: Context, result: ScenarioResult) -> None:
    quick = ctx.options.quick
    sizes = (QUICK_CONSOLES, QUICK_FIELD_UNITS) if quick else (CONSOLES, FIELD_UNITS)
    async with kafka_path(ctx) as (consumer, kafka):
        off = await phase(ctx, "off", consumer, kafka, sizes)
        on = await phase(ctx, "on", consumer, kafka, sizes)
        try:
            on.kafka_records, on.kafka_bytes, on.sent_records = await topic_size(
                kafka.bootstrap, receipts.DEFAULT_TOPIC
            )
        except TimeoutError:
            result.notes.append(f"fleet.receipts was not read back within {READ_BACK_S:.0f} s")
    result.tables.append(table(off, on, sizes))


def table(off: Phase, on: Phase, sizes: tuple[int, int]) -> Table:
    per_alert = max(1, on.alerts)

    def pct(p: Phase, cpu: float) -> str:
        return report.num(100 * cpu / p.window_s)

    answers = on.units.sent + on.consoles.sent
    # on's CPU minus what the same window costs with receipts off
    added = on.gateway_cpu_s - off.gateway_cpu_s * on.window_s / off.window_s
    rows = [
        ["alerts", str(off.alerts), str(on.alerts)],
        ["gateway CPU, % of its core", pct(off, off.gateway_cpu_s), pct(on, on.gateway_cpu_s)],
        ["consumer CPU, % of a core", pct(off, off.consumer_cpu_s), pct(on, on.consumer_cpu_s)],
        [
            "gateway CPU per alert (ms)",
            report.num(1000 * off.gateway_cpu_s / max(1, off.alerts)),
            report.num(1000 * on.gateway_cpu_s / per_alert),
        ],
        ["gateway CPU added by receipts, per alert (ms) / per client receipt (µs)", "",
         f"{report.num(1000 * added / per_alert)} / {report.num(1e6 * added / max(1, answers))}"],
        ["client receipts sent / acked ok / refused", "0", f"{answers} / "
         f"{on.units.ok + on.consoles.ok} / {on.units.refused + on.consoles.refused}"],
        ["fleet.receipts records (of them sent facts)", "0",
         f"{on.kafka_records:,} ({on.sent_records:,})"],
        ["fleet.receipts bytes (key + value)", "0", f"{on.kafka_bytes:,}"],
        ["Kafka bytes per alert", "0", f"{on.kafka_bytes / per_alert:,.0f}"],
        ["Kafka bytes / s at this alert rate", "0", f"{on.kafka_bytes / on.window_s:,.0f}"],
        ["receipt records at the senders' consoles", "0",
         f"{on.consoles.records:,} ({on.consoles.record_bytes:,} B)"],
        ["alert produce -> client p99 (ms)", report.num(off.alert_p99_ms),
         report.num(on.alert_p99_ms)],
    ]  # fmt: skip
    consoles, units = sizes
    return Table(
        f"{NAME}: {consoles} consoles + {units:,} field units, {ALERTS_PER_MIN:.0f} alerts/min, "
        f"receipts off / on",
        ["figure", "off", "on"],
        rows,
        note="Each phase is a fresh gateway on its own core; the consumer and Kafka share the "
        "other core with the clients. Bytes are the records' keys and values as stored, "
        "without Kafka's batch headers or replication.",
    )


SCENARIO = Scenario(
    name=NAME,
    title="Receipts at the city-peak alert rate: gateway CPU and Kafka bytes, off / on",
    about=common.about(__doc__),
    run=run,
)
