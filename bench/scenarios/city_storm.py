"""Scenario: city-storm, the city peak through the whole system while one gateway of two dies.

The city-peak load (200 consoles on the fleet map, 1,000 field units on
their asset, 615 positions/s, incident events x10, status changes 2/s and 30
alerts/min produced to Kafka, through the real consumer and Redis) on two
gateway processes, the clients split half and half. After a steady phase
gateway A is SIGKILLed; its clients reconnect to B as a Service would send
them there (socket.io-client's backoff), resuming every room with
``auth.since`` from their last offsets, while the load goes on. Both
gateways run at the gateway's admission defaults and share the server core
(the consumer's too): the load core keeps what city-peak puts on it (Kafka,
Redis, this controller and the clients), and B gets the whole server core
once A is gone. Reports alert latency before the kill, during the storm
(kill until every client of A is back) and after, for B's own clients and
for A's; time until 50/99/100% of A's clients are back; priority events
lost and duplicated by every client (must be 0); B's CPU; refusals.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence

from bench import events, measure, report, servers
from bench.city import storm
from bench.city.client import Tally
from bench.city.run import city_path, ms3, pct
from bench.context import Context
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common
from bench.scenarios.city_peak import CITY

NAME = "city-storm"
#: Seconds of load before the kill, and after it (the storm and what follows).
SECONDS, QUICK_SECONDS = (20.0, 25.0), (5.0, 10.0)
ALERT = "alert_created"


async def run(ctx: Context, result: ScenarioResult) -> None:
    seconds = QUICK_SECONDS if ctx.options.quick else SECONDS
    city = dataclasses.replace(CITY, name=NAME)
    async with city_path(ctx, city) as kafka:
        gateways = tuple(
            servers.FleetcastGateway(
                ctx.redis_url,
                ctx.plan.server,
                ctx.log_dir,
                gateway_id=f"bench-city-{name}",
                extra_env=servers.DEFAULT_ADMISSION,
            )
            for name in ("a", "b")
        )
        outcome, groups = await storm.run_storm(city, kafka, (gateways[0], gateways[1]), seconds)
    measure.say(f"{NAME}: back {outcome.time_to}, refusals {outcome.refusals}")
    result.tables += [latency_table(outcome, groups), storm_table(outcome, groups)]


def _phases(o: storm.Outcome, tally: Tally, *, alerts: bool) -> dict[str, list[float]]:
    if alerts:
        return storm.split(tally.alert_sent_ns, tally.alert_latency_us, o.kill_ns, o.back_ns)
    return storm.split(tally.priority_sent_ns, tally.priority_latency_us, o.kill_ns, o.back_ns)


def latency_table(o: storm.Outcome, groups: Sequence[storm.Group]) -> Table:
    a, b = groups
    stayed_alerts, moved_alerts = (_phases(o, g.tally, alerts=True) for g in (b, a))
    stayed, moved = (_phases(o, g.tally, alerts=False) for g in (b, a))
    both = {p: stayed[p] + moved[p] for p in storm.PHASES}
    rows = [
        ["events produced during (s)", *_lengths(o)],
        ["alert deliveries, B's clients / A's", *(_n(stayed_alerts, moved_alerts, p) for p in _P)],
        ["alert p50 / p99 / max (ms), B's clients", *(ms3(stayed_alerts[p]) for p in _P)],
        ["alert p50 / p99 / max (ms), A's clients", *(ms3(moved_alerts[p]) for p in _P)],
        ["priority events p99 (ms), B's clients", *(_p99(stayed[p]) for p in _P)],
        ["priority events p99 (ms), A's clients", *(_p99(moved[p]) for p in _P)],
        ["priority events p99 (ms), everyone", *(_p99(both[p]) for p in _P)],
        ["gateway CPU, % of a core", *(_gateways(o.usage[p].cpu) for p in _P)],
        ["gateway waited for a core, % of the phase", *(_gateways(o.usage[p].waited) for p in _P)],
        [
            "clients' process CPU / waited, % (every client is in it)",
            *(f"{o.usage[p].cpu['clients']:.0f} / {o.usage[p].waited['clients']:.0f}" for p in _P),
        ],
        [
            "other cores busy (Kafka, Redis, consumer, others)",
            *(f"{o.usage[p].others_cores:.2f}" for p in _P),
        ],
    ]
    return Table(
        f"{NAME}: latency by the phase an event was produced in ({CITY.consoles} consoles + "
        f"{CITY.field_units:,} field units, half on A, half on B; A SIGKILLed)",
        ["figure", "before the kill", "storm (kill → all of A's back)", "after"],
        rows,
        note="Kafka produce -> client receive on one monotonic clock. A's clients' events of "
        "the storm include the time they had no gateway (replayed from history on resume).",
    )


_P = storm.PHASES


def _lengths(o: storm.Outcome) -> list[str]:
    """Each phase's produce window (s); the storm runs to the end if A's never all came back."""
    back = o.back_ns if o.back_ns is not None else o.produced_ns
    bounds = (o.start_ns, o.kill_ns, back, max(back, o.produced_ns))
    return [f"{(end - begin) / 1e9:.1f}" for begin, end in itertools.pairwise(bounds)]


def _gateways(values: dict[str, float]) -> str:
    return ", ".join(f"{name} {values[name]:.0f}" for name in ("A", "B") if name in values)


def _n(stayed: dict[str, list[float]], moved: dict[str, list[float]], phase: str) -> str:
    return f"{len(stayed[phase]):,} / {len(moved[phase]):,}"


def _p99(values: Sequence[float]) -> str:
    return report.num(pct(values, 99) / 1000)


def storm_table(o: storm.Outcome, groups: Sequence[storm.Group]) -> Table:
    produced = o.produced
    expected = {e.seq for e in produced if e.category == events.PRIORITY}
    alerts = {e.seq for e in produced if e.envelope["event_type"] == ALERT}
    clients = storm.everyone(groups)

    def seconds(times: dict[str, float | None]) -> str:
        return " / ".join(
            "never" if times.get(s) is None else f"{times[s]:.2f}" for s in ("50%", "99%", "100%")
        )

    rows = [
        [
            "clients with a session on A / B before the kill",
            f"{o.connected['A']:,} / {o.connected['B']:,}",
        ],
        ["A's clients back on B", f"{o.back:,} of {o.moved:,}"],
        ["time to 50% / 99% / 100% of A's clients back (s)", seconds(o.time_to)],
        *[[f"… of A's {kind}", seconds(times)] for kind, times in o.time_to_by_kind.items()],
        [
            "events produced (priority / positions)",
            f"{len(expected):,} / {len(produced) - len(expected):,}",
        ],
        *_loss_rows(o, groups, expected, alerts),
        [
            "duplicates (same event id twice), all clients",
            f"{sum(c.duplicates for c in clients):,}",
        ],
        ["sessions lost by B's own clients (cut off)", f"{o.stayed_lost:,}"],
        *[[f"refusals during the storm: {k}", f"{v:,}"] for k, v in o.refusals.items()],
        [
            "gateway B CPU during the storm (s, % of a core)",
            f"{o.storm_cpu_s:.2f} s, {o.usage['storm'].cpu['B']:.0f}%",
        ],
        [
            "gateway B CPU per resume during the storm (ms)",
            report.num(o.storm_cpu_s / max(1, o.back) * 1e3),
        ],
    ]
    return Table(
        f"{NAME}: gateway A SIGKILLed under the city-peak load, its {o.moved:,} clients onto B",
        ["figure", "value"],
        rows,
        note="Lost counts the priority events (alerts, incidents, status changes; every "
        "client gets each one) a client never received; positions are conflated by design. "
        "Both gateways at the admission defaults (500 handshakes/s after a burst of 1,000), "
        "both on the server core; B's CPU per resume includes its share of the live load.",
    )


LOSS_LABELS = {
    "complete": "priority events lost by clients served throughout or resumed complete",
    "gap": "… by A's clients whose resume found a gap (told: recovered false, sent snapshots)",
    "never back": "… by A's clients never back on B within the bound",
}


def _loss_rows(
    o: storm.Outcome, groups: Sequence[storm.Group], expected: set[int], alerts: set[int]
) -> list[list[str]]:
    """Events missed, alerts among them, and by how many clients: per reason (must be 0 first)."""
    rows = []
    for reason, clients in storm.sort_out(groups[0].clients, groups[1].clients, o.returned).items():
        lost = storm.missing(expected, clients)
        lost_alerts = sum(storm.missing(alerts, clients))
        losing = sum(1 for n in lost if n)
        rows.append(
            [
                f"{LOSS_LABELS[reason]} (alerts among them; clients)",
                f"{sum(lost):,} ({lost_alerts:,}; {losing:,} of {len(clients):,})",
            ]
        )
    return rows


SCENARIO = Scenario(
    name=NAME,
    title="City peak on two gateways, one SIGKILLed: alert latency through the storm",
    about=common.about(__doc__),
    run=run,
)
