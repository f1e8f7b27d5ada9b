"""Scenario 2: a dispatch mix over many orgs.

K clients spread over 10 orgs: per org 10% consoles (dispatchers in every
channel, 3 incidents and 25 assets) and 90% field units (their own channel
and asset, listed in their token). Events, one Redis message each, seeded
so both servers get the same sequence: positions 85% (asset room: the unit
and the consoles watching it), transmissions 8% (channel room), incident
updates 6% (incident + channel rooms: a console in both gets it once),
alerts 1% (org room: everyone). The event rate is set so the offered
deliveries/s match `--rate`; latency is reported per category (alerts and
other priority events vs positions). Each server is published to the way its
users publish (fleetcast and Node: Redis; Centrifugo: its HTTP API, an event
for several rooms as one `/api/broadcast`, on its Redis engine). A (client,
event) pair counts once, at its first copy; Centrifugo's broadcast sends a
console in both rooms of an incident update one copy per channel: those are
*room copies*, counted apart (neither deliveries nor duplicates, but in its
CPU).
"""

from __future__ import annotations

import functools
import random
from dataclasses import dataclass

from bench import events, measure, tokens
from bench.context import Context
from bench.events import BenchEvent
from bench.loadgen.client import ClientSpec
from bench.loadgen.control import LoadGen
from bench.registry import Scenario
from bench.results import ScenarioResult
from bench.scenarios import common
from bench.servers import Server
from fleetcast.protocol.rooms import Room, RoomKind, org_room, user_room

NAME = "mix"
ORGS = 10
CHANNELS = 4
INCIDENTS = 3
CONSOLE_SHARE = 0.1
CONSOLE_ASSETS = 25
#: (kind, share of events)
MIX = (("position", 0.85), ("transmission", 0.08), ("incident", 0.06), ("alert", 0.01))
SEED = 7
CLIENTS = (1000, 5000)
MAX_EVENTS = 20_000


@dataclass(frozen=True, slots=True)
class Org:
    name: str
    consoles: int
    units: int

    @property
    def assets(self) -> int:
        return max(CONSOLE_ASSETS, self.units)


def orgs_for(clients: int) -> list[Org]:
    per_org = max(1, clients // ORGS)
    consoles = max(1, round(per_org * CONSOLE_SHARE))
    return [Org(f"org-mix-{i}", consoles, per_org - consoles) for i in range(ORGS)]


def _room(kind: RoomKind, org: str, entity: str) -> str:
    return Room(kind, org, entity).name


def client_specs(orgs: list[Org]) -> list[ClientSpec]:
    specs: list[ClientSpec] = []
    for org in orgs:
        base = (org_room(org.name).name,)
        for i in range(org.consoles):
            user = f"con-{i}"
            assets = [f"a-{(i * CONSOLE_ASSETS + j) % org.assets}" for j in range(CONSOLE_ASSETS)]
            asks = [f"channel:ch-{c}" for c in range(CHANNELS)]
            asks += [f"incident:inc-{n}" for n in range(INCIDENTS)] + [f"asset:{a}" for a in assets]
            specs.append(_spec(user, org.name, ["dispatcher"], asks, base))
        for i in range(org.units):
            channel, asset = f"ch-{i % CHANNELS}", f"a-{i}"
            asks = [f"channel:{channel}", f"asset:{asset}"]
            tok = tokens.token(
                f"unit-{i}", org.name, ["field_unit"], channels=[channel], assets=[asset]
            )
            specs.append(_spec(f"unit-{i}", org.name, [], asks, base, tok))
    return specs


def _spec(
    user: str, org: str, roles: list[str], asks: list[str], base: tuple[str, ...], tok: str = ""
) -> ClientSpec:
    rooms = [*base, user_room(user, org).name]
    for ask in asks:
        kind, entity = ask.split(":")
        rooms.append(_room(RoomKind(kind), org, entity))
    return ClientSpec(tok or tokens.token(user, org, roles), tuple(asks), tuple(rooms))


def batch(orgs: list[Org], count: int, seed: int = SEED) -> list[BenchEvent]:
    rng = random.Random(seed)
    kinds = [k for k, _ in MIX]
    weights = [w for _, w in MIX]
    out = []
    for seq in range(count):
        org = rng.choice(orgs)
        kind = rng.choices(kinds, weights)[0]
        channel = f"ch-{rng.randrange(CHANNELS)}"
        if kind == "position":
            out.append(events.position(seq, org.name, f"a-{rng.randrange(org.assets)}"))
        elif kind == "transmission":
            out.append(events.transmission(seq, org.name, channel))
        elif kind == "incident":
            incident = f"inc-{rng.randrange(INCIDENTS)}"
            out.append(events.incident_update(seq, org.name, incident, channel))
        else:
            out.append(events.alert(seq, org.name))
    return out


@dataclass(frozen=True, slots=True)
class Plan:
    """One K's clients, orgs and paced phase, the same for every server."""

    specs: list[ClientSpec]
    orgs: list[Org]
    phase: list[BenchEvent]
    event_rate: float


def plan_for(clients: int, rate: float, seconds: float) -> tuple[Plan, float]:
    """The clients and the paced phase offering ``rate`` deliveries/s; and deliveries per event."""
    orgs = orgs_for(clients)
    specs = client_specs(orgs)
    sample = batch(orgs, 2000)
    per_event = measure.expected_deliveries(specs, sample) / len(sample)
    event_rate = rate / per_event
    phase = batch(orgs, min(MAX_EVENTS, round(event_rate * seconds)))
    return Plan(specs, orgs, phase, event_rate), per_event


async def run(ctx: Context, result: ScenarioResult) -> None:
    opts = ctx.options
    for k in ctx.clients(CLIENTS):
        plan, per_event = plan_for(k, opts.rate, opts.seconds)
        result.notes.append(
            f"K={len(plan.specs):,}: {ORGS} orgs, {plan.event_rate:,.0f} events/s, "
            f"{per_event:.1f} deliveries per event on average"
        )
        for name in opts.servers:
            async with ctx.serving(name) as (server, loadgen):
                await one_server(ctx, result, server, loadgen, plan)
    if "centrifugo" in opts.servers:
        result.notes.append(
            "room copies: extra copies Centrifugo's per-channel broadcast sent consoles in "
            "both rooms of an incident update; not counted as deliveries, but its CPU per "
            "delivery pays for them. Centrifugo runs on both cores (taskset 0,1), the others on one"
        )


async def one_server(
    ctx: Context, result: ScenarioResult, server: Server, loadgen: LoadGen, plan: Plan
) -> None:
    """Connect, prime every org, then one paced phase, published through ``server``'s own way."""
    specs, phase = plan.specs, plan.phase
    publisher = server.publisher()
    try:
        primers = [events.alert(0, org.name) for org in plan.orgs]
        if not await common.prepare(result, server, loadgen, specs, primers, publisher):
            return
        result.deliveries.append(
            await measure.deliver(
                NAME,
                "paced",
                server,
                loadgen,
                specs,
                phase,
                functools.partial(publisher.paced, phase, plan.event_rate),
                offered_per_s=ctx.options.rate,
                raw=ctx.raw_dir / f"{NAME}-{server.name}-{len(specs)}.npz",
            )
        )
        await loadgen.close_all()
    finally:
        await publisher.close()


SCENARIO = Scenario(
    name=NAME,
    title="Dispatch mix: many orgs, channel/incident/asset rooms, positions and rare alerts",
    about=common.about(__doc__),
    run=run,
)
