"""Scenario: receipts at the city-peak alert rate, what they cost the gateway and Kafka.

One org of a large city: 200 consoles and 1,000 field units on one gateway
process (its own core), 30 alerts a minute (the city-peak rate of the
workload notes) produced to Kafka through the real consumer. Three phases
on the same traffic, each with a fresh gateway: receipts off
(FLEETCAST_RECEIPT_EVENTS empty); written only, where every unit answers
each alert delivered, displayed and acknowledged and every console
delivered and displayed (as the CLI client and the console do) and the
gateway writes its ``sent`` facts, but the alerts name no sender; and
written and routed, where the consumer sends every receipt back to the
alert's sender (one of 10 consoles). Gateway and consumer CPU over the phase, and
what ``fleet.receipts`` holds afterwards (records and bytes, read back from
the broker): the cost of receipts is the difference.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, TopicPartition

from bench import events, measure, procs, report, servers, tokens
from bench.city.answering import CONSOLE_KINDS, UNIT_KINDS, AnsweringClient, Answers
from bench.city.client import MapClient, Tally, connect_all
from bench.context import Context
from bench.pipeline import PARTITIONS, Consumer, KafkaPublisher
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
#: off: FLEETCAST_RECEIPT_EVENTS empty; intake: receipts written, alerts name no
#: sender (routed to nobody); on: written and routed back to the senders' consoles.
MODES = ("off", "intake", "on")
LABELS = {"off": "off", "intake": "written only", "on": "written + to senders"}
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


def alerts(seconds: float, *, senders: bool) -> list[events.BenchEvent]:
    """The phase's alerts; without senders their receipts are routed to nobody."""
    count = max(1, round(ALERTS_PER_MIN / 60 * seconds))
    built = []
    for seq in range(count):
        alert = events.alert(seq, ORG)
        data = dict(alert.envelope["data"])
        if senders:
            data["sent_by"] = f"console-{seq % SENDERS}"
        built.append(events.make(seq, "alert_created", ORG, data))
    return built


def clients(
    consoles: int, units: int, *, answering: bool
) -> tuple[list[AnsweringClient], Answers, Answers, Tally]:
    """Consoles and units; they answer only when the gateway asks (session.receipts)."""
    tally, on_consoles, on_units = Tally(), Answers(), Answers()
    console_kinds, unit_kinds = (CONSOLE_KINDS, UNIT_KINDS) if answering else ((), ())
    made = [
        AnsweringClient(
            tokens.token(f"console-{i}", ORG, ["dispatcher"]), (), tally, on_consoles, console_kinds
        )
        for i in range(consoles)
    ]
    made += [
        AnsweringClient(
            tokens.token(f"unit-{i}", ORG, ["field_unit"]), (), tally, on_units, unit_kinds
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
    everyone, on_consoles, on_units, tally = clients(*sizes, answering=mode != "off")
    try:
        await server.start()
        connected = await connect_all(list[MapClient](everyone), server.port)
        measure.say(f"{NAME} {mode}: {connected}/{len(everyone)} connected")
        await asyncio.sleep(measure.SETTLE_S)
        seconds = QUICK_SECONDS if ctx.options.quick else SECONDS
        batch = alerts(seconds, senders=mode == "on")
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
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=8 << 20,
    )
    await reader.start()
    try:
        parts = [TopicPartition(topic, p) for p in range(PARTITIONS)]
        reader.assign(parts)
        ends = await reader.end_offsets(parts)
        await reader.seek_to_beginning(*parts)
        records = size = sent = 0
        async with asyncio.timeout(READ_BACK_S):
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
    phases: list[Phase] = []
    async with kafka_path(ctx) as (consumer, kafka):
        seen = (0, 0, 0)
        for mode in MODES:
            done = await phase(ctx, mode, consumer, kafka, sizes)
            phases.append(done)
            if mode == "off":
                continue
            try:
                now = await topic_size(kafka.bootstrap, receipts.DEFAULT_TOPIC)
            except TimeoutError:
                result.notes.append(f"fleet.receipts was not read back within {READ_BACK_S:.0f} s")
                continue
            done.kafka_records, done.kafka_bytes, done.sent_records = (
                a - b for a, b in zip(now, seen, strict=True)
            )
            seen = now
    result.tables.append(table(phases, sizes))


def table(phases: list[Phase], sizes: tuple[int, int]) -> Table:
    off = phases[0]

    def row(name: str, figure: Callable[[Phase], str]) -> list[str]:
        return [name, *(figure(p) for p in phases)]

    def pct(cpu: float, p: Phase) -> str:
        return report.num(100 * cpu / p.window_s)

    def answers(p: Phase) -> int:
        return p.units.sent + p.consoles.sent

    def added(p: Phase) -> float:  # CPU minus what the same window costs with receipts off
        return p.gateway_cpu_s - off.gateway_cpu_s * p.window_s / off.window_s

    def per(p: Phase) -> int:
        return max(1, p.alerts)

    rows = [
        row("alerts", lambda p: str(p.alerts)),
        row("gateway CPU, % of its core", lambda p: pct(p.gateway_cpu_s, p)),
        row("consumer CPU, % of a core", lambda p: pct(p.consumer_cpu_s, p)),
        row(
            "gateway CPU added by receipts, per alert (ms) / per client receipt (µs)",
            lambda p: (
                f"{report.num(1000 * added(p) / per(p))} / "
                f"{report.num(1e6 * added(p) / max(1, answers(p)))}"
                if answers(p)
                else ""
            ),
        ),
        row(
            "client receipts sent / acked ok / refused",
            lambda p: (
                f"{answers(p):,} / {p.units.ok + p.consoles.ok:,} / "
                f"{p.units.refused + p.consoles.refused:,}"
            ),
        ),
        row(
            "fleet.receipts records (of them sent facts)",
            lambda p: f"{p.kafka_records:,} ({p.sent_records:,})",
        ),
        row("fleet.receipts bytes (key + value)", lambda p: f"{p.kafka_bytes:,}"),
        row("Kafka bytes per alert", lambda p: f"{p.kafka_bytes / per(p):,.0f}"),
        row("Kafka bytes / s at this alert rate", lambda p: f"{p.kafka_bytes / p.window_s:,.0f}"),
        row(
            "receipt records at the senders' consoles",
            lambda p: f"{p.consoles.records:,} ({p.consoles.record_bytes:,} B)",
        ),
        row("alert produce -> client p99 (ms)", lambda p: report.num(p.alert_p99_ms)),
    ]
    consoles, units = sizes
    return Table(
        f"{NAME}: {consoles} consoles + {units:,} field units, {ALERTS_PER_MIN:.0f} alerts/min, "
        "receipts off / written only / written and routed to the senders",
        ["figure", *(LABELS[p.mode] for p in phases)],
        rows,
        note="Each phase is a fresh gateway on its own core; the consumer and Kafka share the "
        "other core with the clients. 'written only': the alerts name no sender, so their "
        "receipts go to Kafka and no further. Bytes are the records' keys and values as stored, "
        "without Kafka's batch headers or replication.",
    )


SCENARIO = Scenario(
    name=NAME,
    title="Receipts at the city-peak alert rate: gateway CPU and Kafka bytes, off / on",
    about=common.about(__doc__),
    run=run,
)
