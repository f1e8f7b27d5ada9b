"""Scenario: city-steady, a large city's normal hour through the whole path.

150 consoles on the fleet map and 2,500 field units (one per asset; the
model's 7,500 scaled down for 2 cores) of one org of 2,500 units; 354
positions/s, incident events 1/s, status changes 0.5/s and 30 alerts/min
produced to Kafka, through the consumer and Redis to one gateway. Reports
frames/s per connection (consoles get one batch a second instead of 354
positions), deliveries/s, alert latency end to end, gateway CPU and RSS per
connection.
"""

from __future__ import annotations

from bench.city.run import City, run_city
from bench.context import Context
from bench.registry import Scenario
from bench.results import ScenarioResult
from bench.scenarios import common

NAME = "city-steady"
CITY = City(
    name=NAME,
    consoles=150,
    field_units=2500,
    assets=2500,
    positions_per_s=354.0,
    hot_assets=0,
    incident_events_per_s=1.0,
    status_changes_per_s=0.5,
    alerts_per_min=30.0,
)


async def run(ctx: Context, result: ScenarioResult) -> None:
    await run_city(ctx, CITY, result)


SCENARIO = Scenario(
    name=NAME,
    title="City, steady: 150 consoles + 2,500 field units, 354 positions/s via Kafka",
    about=common.about(__doc__),
    run=run,
)
