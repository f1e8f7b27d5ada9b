"""A large city's dispatch traffic through the whole path, scaled for a 2-core machine.

The workload model (shared notes): one org of 2,500 units reporting
positions, 150-200 consoles each watching all of them on a map (the fleet
room, batched once a second), field units each following their own asset,
incidents and alerts that every client of the org receives. Events are
produced to a real Kafka broker, go through the real consumer (which keeps
the fleet snapshot in Redis) and reach one gateway process pinned to its own
core; Kafka, the consumer, Redis, this controller and the clients share the
other core. Field clients are 2,500 (one per asset) instead of the model's
7,500: the controller's core cannot run more while Kafka and the consumer
share it.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass

import numpy as np
from prometheus_client.parser import text_string_to_metric_families

from bench import events, measure, procs, report, servers, tokens
from bench.city.client import MapClient, Tally, connect_all
from bench.context import Context
from bench.events import BenchEvent
from bench.pipeline import KafkaPublisher
from bench.results import ScenarioResult, Table
from bench.scenarios.whole_path import kafka_path
from fleetcast.protocol import rooms

ORG = "org-city"
CHANNEL = "ch-dispatch"
SAMPLED_CONSOLES = 3
DRAIN_S = 3.0


@dataclass(frozen=True, slots=True)
class City:
    name: str
    consoles: int
    field_units: int
    assets: int
    positions_per_s: float
    #: Units at 1 Hz (pursuits, ambulances running hot) on top of the others' reports.
    hot_assets: int
    incident_events_per_s: float
    status_changes_per_s: float
    alerts_per_min: float
    seconds: float = 20.0


def schedule(city: City, seconds: float) -> list[BenchEvent]:
    """Every event of one phase in produce order: streams merged by their due time."""
    timed: list[tuple[float, int, str]] = []
    rates = {
        "position": city.positions_per_s - city.hot_assets,
        "hot": float(city.hot_assets),
        "incident": city.incident_events_per_s,
        "status": city.status_changes_per_s,
        "alert": city.alerts_per_min / 60.0,
    }
    for order, (kind, rate) in enumerate(rates.items()):
        count = int(rate * seconds)
        timed += [((i + 0.5) / rate, order, kind) for i in range(count)]
    timed.sort()
    built: list[BenchEvent] = []
    counters = dict.fromkeys(rates, 0)
    for seq, (_at, _order, kind) in enumerate(timed):
        n = counters[kind]
        counters[kind] += 1
        built.append(_event(city, kind, seq, n))
    return built


def _event(city: City, kind: str, seq: int, n: int) -> BenchEvent:
    if kind == "position":
        return events.position(seq, ORG, f"unit-{(n * 7) % city.assets}")
    if kind == "hot":
        return events.position(seq, ORG, f"unit-{n % city.hot_assets}")
    if kind == "incident":
        event_type = "incident_created" if n % 4 == 0 else "incident_status_changed"
        data = {"incident_id": f"inc-{n // 4}", "channel_id": CHANNEL, "status": "dispatched"}
        return events.make(seq, event_type, ORG, data)
    if kind == "status":
        data = {"asset_id": f"unit-{(n * 13) % city.assets}", "status": "en_route"}
        return events.make(seq, "asset_status_changed", ORG, data)
    return events.alert(seq, ORG)


@dataclass(frozen=True, slots=True)
class Member:
    """One client of the city: its token, its rooms, whether its positions' ages are read."""

    token: str
    rooms: tuple[str, ...]
    sample: bool = False


def members(city: City) -> tuple[list[Member], list[Member]]:
    """The city's consoles (fleet room) and field units (their own asset's room)."""
    consoles = [
        Member(
            tokens.token(f"console-{i}", ORG, ["dispatcher"]),
            ("fleet",),
            sample=i < SAMPLED_CONSOLES,
        )
        for i in range(city.consoles)
    ]
    field = [
        Member(
            tokens.token(f"unit-{i}", ORG, ["field_unit"], assets=[f"unit-{i}"]),
            (rooms.Room(rooms.RoomKind.ASSET, ORG, f"unit-{i}").client_name,),
        )
        for i in range(city.field_units)
    ]
    return consoles, field


def clients(city: City) -> tuple[list[MapClient], list[MapClient], Tally, Tally]:
    consoles_tally, field_tally = Tally(), Tally()
    consoles, field = members(city)
    return (
        [MapClient(m.token, m.rooms, consoles_tally, sample=m.sample) for m in consoles],
        [MapClient(m.token, m.rooms, field_tally, sample=m.sample) for m in field],
        consoles_tally,
        field_tally,
    )


@contextlib.asynccontextmanager
async def city_path(ctx: Context, city: City) -> AsyncIterator[KafkaPublisher]:
    """Kafka, the consumer and its fleet snapshot (a position per unit) for one city run."""
    async with kafka_path(ctx) as (consumer, kafka):
        measure.say(f"{city.name}: one position per unit first (the snapshot consoles start from)")
        await kafka.burst([events.position(i, ORG, f"unit-{i}") for i in range(city.assets)])
        await consumer.wait_handled(await consumer.handled() + city.assets, within_s=60.0)
        yield kafka


async def run_city(ctx: Context, city: City, result: ScenarioResult) -> None:
    async with city_path(ctx, city) as kafka:
        server = servers.FleetcastGateway(
            ctx.redis_url, ctx.plan.server, ctx.log_dir, gateway_id=f"bench-{city.name}"
        )
        try:
            await server.start()
            await _measure(ctx, city, server, kafka, result)
        finally:
            server.stop()


@dataclass(slots=True)
class Measured:
    """One phase's raw figures."""

    sent: int
    positions: int
    produce_s: float
    window_s: float
    cpu_s: float
    connected: int
    connect_s: float
    rss_per_conn: float
    shed: float


async def _measure(
    ctx: Context, city: City, server: servers.FleetcastGateway, kafka: KafkaPublisher,
    result: ScenarioResult,
) -> None:  # fmt: skip
    consoles, field, console_tally, field_tally = clients(city)
    everyone = consoles + field
    rss_base = procs.rss_bytes(server.pid)
    started = time.monotonic()
    connected = await connect_all(field, server.port) + await connect_all(consoles, server.port)
    connect_s = time.monotonic() - started
    await asyncio.sleep(measure.SETTLE_S)
    rss_loaded = procs.rss_bytes(server.pid)
    measure.say(f"{city.name}: {connected}/{len(everyone)} connected in {connect_s:.1f}s")

    produce_s = 5.0 if ctx.options.quick else city.seconds
    phase = schedule(city, produce_s)
    for client in everyone:
        client.counting = True
    before = procs.CpuSample.take([server.pid])
    sent = await kafka.paced(phase, len(phase) / produce_s)
    await asyncio.sleep(DRAIN_S)
    after = procs.CpuSample.take([server.pid])
    for client in everyone:
        client.counting = False
        client.close()
    measured = Measured(
        sent=sent,
        positions=sum(1 for e in phase[:sent] if e.category == events.POSITION),
        produce_s=after.at - before.at - DRAIN_S,
        window_s=after.at - before.at,
        cpu_s=after.since(before, server.pid),
        connected=connected,
        connect_s=connect_s,
        rss_per_conn=(rss_loaded - rss_base) / max(1, connected),
        shed=counter(await server.metrics(), "fleetcast_gateway_positions_shed"),
    )
    result.tables.append(table(city, measured, console_tally, field_tally))
    measure.say(f"{city.name}: {measured.sent:,} events in {measured.produce_s:.1f}s")


def pct(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if len(values) else math.nan


def table(city: City, m: Measured, consoles: Tally, field: Tally) -> Table:
    window = m.window_s
    frames = consoles.frames + field.frames
    per_position = m.positions * city.consoles + (m.sent - m.positions) * m.connected
    priority = [*consoles.priority_latency_us, *field.priority_latency_us]
    alerts = [*consoles.alert_latency_us, *field.alert_latency_us]
    rows = [
        ["events produced / s", report.num(m.sent / m.produce_s)],
        ["positions produced / s", report.num(m.positions / m.produce_s)],
        ["frames / s, all connections (deliveries / s)", report.num(frames / window)],
        ["frames / s per console", report.num(consoles.frames / window / city.consoles)],
        ["frames / s per field unit", report.num(field.frames / window / city.field_units)],
        ["frames / s if each position were its own frame", report.num(per_position / window)],
        [
            "positions delivered / s (batched + single)",
            report.num((consoles.positions + field.positions) / window),
        ],
        ["batches per console / s", report.num(consoles.batches / window / city.consoles)],
        ["alert produce -> client p50 / p99 / max (ms)", ms3(alerts)],
        ["all priority events produce -> client p99 (ms)", report.num(pct(priority, 99) / 1000)],
        [
            "position age in a batch p50 / p99 (ms)",
            f"{pct(consoles.position_age_us, 50) / 1000:.0f} / "
            f"{pct(consoles.position_age_us, 99) / 1000:.0f}",
        ],
        ["gateway CPU, % of its core", report.num(100 * m.cpu_s / window)],
        ["gateway RSS per connection (KiB)", report.num(m.rss_per_conn / 1024)],
        [f"connect + subscribe {m.connected:,} clients (s)", report.num(m.connect_s)],
        ["positions shed", report.num(m.shed)],
        ["clients closed during the phase", str(consoles.closed + field.closed)],
    ]
    return Table(
        f"{city.name}: {city.consoles} consoles on the fleet map + {city.field_units:,} field "
        f"units; {m.sent:,} events produced to Kafka over {m.produce_s:.0f} s",
        ["figure", "value"],
        rows,
        note="Latency is Kafka produce -> client receive on one monotonic clock. A position's "
        "age includes the fleet room's batch interval (up to 1 s) by design.",
    )


def ms3(values: Sequence[float]) -> str:
    if not len(values):
        return "n/a"
    return " / ".join(f"{pct(values, q) / 1000:.1f}" for q in (50, 99, 100))


def counter(text: str, name: str) -> float:
    """A counter's value summed over its labels, from Prometheus text."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == name
        for sample in family.samples
        if sample.name == f"{name}_total"
    )
