"""Scenario 1: broadcast fan-out to one room of K clients.

K dispatcher clients subscribe to `channel:ch-1` of one org; every event is
a `transmission_started` on that channel (~330 bytes of JSON), so each one is
delivered to all K. Two phases per server and K: *paced* (the offered
deliveries/s spread evenly over the phase: latency and CPU per delivery at a
steady load) and *burst* (all events published back to back: the deliveries
per second the server sustains, unless the load generator is the limit).
"""

from __future__ import annotations

from bench import measure
from bench.context import Context
from bench.loadgen.client import ClientSpec
from bench.loadgen.control import LoadGen
from bench.publish import Publisher
from bench.registry import Scenario
from bench.results import ScenarioResult
from bench.scenarios import common
from bench.servers import Server

NAME = "fanout"
ORG = "org-fanout"
#: Deliveries a burst aims at, and its bounds in events.
BURST_DELIVERIES = 200_000
BURST_EVENTS = (10, 100)
PACED_EVENTS = (20, 2000)
CLIENTS = (1000, 5000, 10_000)


async def run(ctx: Context, result: ScenarioResult) -> None:
    for k in ctx.clients(CLIENTS):
        specs = common.client_specs(k, ORG)
        for name in ctx.options.servers:
            await one_server(ctx, result, name, specs)


async def one_server(
    ctx: Context, result: ScenarioResult, name: str, specs: list[ClientSpec]
) -> None:
    async with ctx.serving(name) as (server, loadgen):
        publisher = server.publisher()
        try:
            await phases(ctx, result, server, loadgen, publisher, specs)
        finally:
            await publisher.close()


async def phases(
    ctx: Context,
    result: ScenarioResult,
    server: Server,
    loadgen: LoadGen,
    publisher: Publisher,
    specs: list[ClientSpec],
) -> None:
    """Connect (the connection figures), then a paced and a burst phase."""
    k, opts, name = len(specs), ctx.options, server.name
    primers = common.batch(1, ORG)
    if not await common.prepare(result, server, loadgen, specs, primers, publisher):
        return
    paced = common.batch(common.clamp(opts.rate * opts.seconds / k, PACED_EVENTS), ORG)
    result.deliveries.append(
        await measure.deliver(
            NAME,
            "paced",
            server,
            loadgen,
            specs,
            paced,
            lambda: publisher.paced(paced, opts.rate / k),
            offered_per_s=opts.rate,
            raw=ctx.raw_dir / f"{NAME}-{name}-{k}-paced.npz",
        )
    )
    burst = common.batch(common.clamp(BURST_DELIVERIES / k, BURST_EVENTS), ORG)
    result.deliveries.append(
        await measure.deliver(
            NAME,
            "burst",
            server,
            loadgen,
            specs,
            burst,
            lambda: publisher.burst(burst),
            raw=ctx.raw_dir / f"{NAME}-{name}-{k}-burst.npz",
        )
    )
    await loadgen.close_all()


SCENARIO = Scenario(
    name=NAME,
    title="Broadcast fan-out to one room of K clients",
    about=common.about(__doc__),
    run=run,
)
