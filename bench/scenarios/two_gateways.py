"""Scenario 5: two gateway processes behind one Redis.

Gateway A has clients of orgs 0-4, gateway B of orgs 4-9 (org 4 is on
both). Phase *even* publishes to all ten orgs alike; phase *B only* publishes
the same number of events to orgs 5-9 only. Each gateway's Redis ingress is
read from its own /metrics (`fleetcast_gateway_redis_messages_total`, per
org): it should follow the orgs the gateway serves (A's ingress stays flat
in *B only*), not the total traffic. Clients count every delivery (lost
must be 0). fleetcast only: the Node reference subscribes to every org.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from bench import events, measure, report
from bench.context import Context
from bench.events import BenchEvent
from bench.loadgen.client import ClientSpec
from bench.loadgen.control import LoadGen
from bench.publish import RedisPublisher
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common
from bench.servers import FleetcastGateway

NAME = "two-gateways"
ORGS = [f"org-gw-{i}" for i in range(10)]
SERVED = {"A": ORGS[0:5], "B": ORGS[4:10]}
CLIENTS_PER_ORG = 50
EVENTS_PER_PHASE = 1000
RATE = 500.0
INGRESS = re.compile(r'^fleetcast_gateway_redis_messages_total\{org="([^"]+)"\} (\S+)$', re.M)


def phase_events(orgs: Sequence[str], count: int) -> list[BenchEvent]:
    return [events.transmission(seq, orgs[seq % len(orgs)], common.CHANNEL) for seq in range(count)]


async def ingress(gateway: FleetcastGateway) -> dict[str, float]:
    return {org: float(v) for org, v in INGRESS.findall(await gateway.metrics())}


async def run(ctx: Context, result: ScenarioResult) -> None:
    if "fleetcast" not in ctx.options.servers:
        result.notes.append("skipped: fleetcast is not among --servers")
        return
    gateways = {
        name: FleetcastGateway(
            ctx.redis_url, ctx.plan.server, ctx.log_dir, gateway_id=f"bench-gw-{name}"
        )
        for name in SERVED
    }
    loadgen = ctx.loadgen()
    publisher = RedisPublisher(ctx.redis_url)
    try:
        for gateway in gateways.values():
            await gateway.start()
        await loadgen.start()
        specs = await connect_all(result, gateways, loadgen, publisher)
        phases = {"even": ORGS, "B only": ORGS[5:]}
        rows = []
        for phase, orgs in phases.items():
            batch = phase_events(orgs, EVENTS_PER_PHASE)
            before = {n: await ingress(g) for n, g in gateways.items()}
            lost = await publish_and_count(loadgen, specs, batch, publisher)
            after = {n: await ingress(g) for n, g in gateways.items()}
            for name in gateways:
                own = sum(1 for e in batch if e.org in SERVED[name])
                got = sum(after[name].get(o, 0.0) - before[name].get(o, 0.0) for o in after[name])
                rows.append(_row(phase, name, len(batch), own, got, lost))
        result.tables.append(
            Table(
                "Redis ingress per gateway (pub/sub messages read, from its /metrics)",
                [
                    *("phase", "gateway", "orgs served", "published", "to its orgs"),
                    *("read from Redis", "read / to its orgs", "lost (all clients)"),
                ],
                rows,
            )
        )
    finally:
        await publisher.close()
        await loadgen.stop()
        for gateway in gateways.values():
            gateway.stop()


def _row(phase: str, name: str, total: int, own: int, got: float, lost: int) -> list[str]:
    share = got / own if own else float("nan")
    orgs = f"{len(SERVED[name])} ({SERVED[name][0]}…{SERVED[name][-1]})"
    return [
        phase,
        name,
        orgs,
        f"{total:,}",
        f"{own:,}",
        report.num(got, 0),
        report.num(share, 2),
        f"{lost:,}",
    ]


async def connect_all(
    result: ScenarioResult,
    gateways: dict[str, FleetcastGateway],
    loadgen: LoadGen,
    publisher: RedisPublisher,
) -> list[ClientSpec]:
    """Clients of each gateway's orgs on it; returns once every org channel is live."""
    specs: list[ClientSpec] = []
    for name, gateway in gateways.items():
        mine = [s for org in SERVED[name] for s in common.client_specs(CLIENTS_PER_ORG, org)]
        conn = await loadgen.connect(gateway.host, gateway.port, gateway.path, mine)
        if conn.failed:
            result.notes.append(
                f"gateway {name}: {conn.failed} clients failed to connect {conn.errors}"
            )
        specs += mine
    for org in ORGS:
        event = common.batch(1, org)[0]
        if not await measure.prime(loadgen, specs, event, publisher.burst):
            result.notes.append(f"{org}: priming event never arrived everywhere")
    return specs


async def publish_and_count(
    loadgen: LoadGen, specs: list[ClientSpec], batch: list[BenchEvent], publisher: RedisPublisher
) -> int:
    want = measure.expected_deliveries(specs, batch)
    await loadgen.arm(len(batch))
    await publisher.paced(batch, RATE)
    await loadgen.wait_for(want, deadline_s=measure.DRAIN_S, idle_s=5.0)
    done = await loadgen.collect(
        [e.rooms for e in batch], [e.category for e in batch], events.CATEGORIES
    )
    lost: int = done["accounting"]["lost"]
    return lost


SCENARIO = Scenario(
    name=NAME,
    title="Two gateway processes behind one Redis: ingress follows the orgs served",
    about=common.about(__doc__),
    run=run,
)
