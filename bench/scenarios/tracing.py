"""Scenario 9: what traces cost on the hot paths (bench/tracing_cost.py).

The consumer's handling of a poll (decode, route, spans, encoding of the
Redis call) and the gateway's fan-out (wire message to frames for K
connections per org), each in this process with the real OpenTelemetry SDK
exporting over OTLP/HTTP to a real Jaeger on loopback, in three modes:
tracing off (the default), on with the default sampling (every priority
event, 1 % of positions) and on for every event. Process CPU (all threads,
the SDK's export included) per event and per delivery, the minimum over
interleaved rounds; the demo fleet's mix (80 % positions).
"""

from __future__ import annotations

import asyncio

from bench import report, tracing_cost
from bench.context import Context
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common

NAME = "tracing"
EVENTS, QUICK_EVENTS = 40_000, 10_000
CLIENTS_PER_ORG = 20
ROUNDS, QUICK_ROUNDS = 3, 1


async def run(ctx: Context, result: ScenarioResult) -> None:
    quick = ctx.options.quick
    figures = await asyncio.to_thread(
        tracing_cost.measure,
        QUICK_EVENTS if quick else EVENTS,
        CLIENTS_PER_ORG,
        QUICK_ROUNDS if quick else ROUNDS,
    )
    off = figures[0]
    rows = [
        [
            f.mode,
            f"{f.traced_share:.1%}",
            report.num(f.consumer_us_per_event, 2),
            f"{f.consumer_us_per_event / off.consumer_us_per_event:.2f}x",
            report.num(f.gateway_us_per_delivery, 3),
            f"{f.gateway_us_per_delivery / off.gateway_us_per_delivery:.2f}x",
        ]
        for f in figures
    ]
    result.tables.append(
        Table(
            "Tracing cost: CPU per event (consumer) and per delivery (gateway)",
            [
                *("tracing", "events traced", "consumer CPU µs/event", "vs off"),
                *("gateway CPU µs/delivery", "vs off"),
            ],
            rows,
            note=f"{figures[0].deliveries:,} deliveries per pass ({CLIENTS_PER_ORG} connections "
            "per org in its org and fleet rooms); a traced event costs one span in the consumer "
            "and one per gateway, never one per recipient.",
        )
    )


SCENARIO = Scenario(
    name=NAME,
    title="Tracing cost on the hot paths: off, sampled, everything",
    about=common.about(__doc__),
    run=run,
)
