"""Scenario: city-peak, a large city's worst hour through the whole path.

200 consoles on the fleet map and 1,000 field units (the model's 7,500
scaled down: at peak every client of the org receives 12 org-wide events a
second, and the clients share one core with Kafka and the consumer) of one
org of 2,500 units; 615 positions/s (25 units at 1 Hz among them), incident events x10
(10/s), status changes 2/s and 30 alerts/min produced to Kafka, through the
consumer and Redis to one gateway. The question: do alerts keep p99 < 1 s
(ambition 100 ms) end to end while positions saturate the path.
"""

from __future__ import annotations

from bench.city.run import City, run_city
from bench.context import Context
from bench.registry import Scenario
from bench.results import ScenarioResult
from bench.scenarios import common

NAME = "city-peak"
CITY = City(
    name=NAME,
    consoles=200,
    field_units=1000,
    assets=2500,
    positions_per_s=615.0,
    hot_assets=25,
    incident_events_per_s=10.0,
    status_changes_per_s=2.0,
    alerts_per_min=30.0,
)


async def run(ctx: Context, result: ScenarioResult) -> None:
    await run_city(ctx, CITY, result)


SCENARIO = Scenario(
    name=NAME,
    title="City, peak: 200 consoles + 1,000 field units, 615 positions/s, incidents x10",
    about=common.about(__doc__),
    run=run,
)
