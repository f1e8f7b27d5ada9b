"""Scenario: storm-pod, a lost gateway's clients reconnecting to another one.

5,000 field clients connect to gateway A (on the load core), each in its org
and user rooms; events are published as the consumer does (its own script,
history + pub/sub; no Kafka needed for the storm itself). A is SIGKILLed and
every client reconnects to gateway B (on the server core, its admission
control at the defaults: 500 handshakes/s, burst 1,000) after 0.5-1.5 s, as
socket.io-client does, resuming with ``auth.since``; ``rate_limited``
refusals are retried after their ``retry_after``. Events keep coming
throughout. Reports time to 50/99/100% reconnected, refusals, and events
lost by clients that resumed (must be 0). A second storm does the same with
B's admission opened wide: how fast one gateway process takes them when
nothing holds them back (the CPU per resume is then the limit).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import redis.asyncio as aioredis

from bench import measure, procs, report, servers, tokens
from bench.context import Context
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common
from bench.storm.run import ConsumerScript, Plan, Report, Storm

NAME = "storm-pod"
CLIENTS = 5000
ORG = "org-storm"
B_ADMISSION = {"FLEETCAST_HANDSHAKE_RATE": "500", "FLEETCAST_HANDSHAKE_BURST": "1000"}
#: B's admission in each storm: the defaults, then nothing held back.
ADMISSIONS = {
    "defaults (500 handshakes/s after a burst of 1,000)": B_ADMISSION,
    "opened wide": {"FLEETCAST_HANDSHAKE_RATE": "1000000", "FLEETCAST_HANDSHAKE_BURST": "1000000"},
}


async def run(ctx: Context, result: ScenarioResult) -> None:
    count = CLIENTS if not ctx.options.clients else max(ctx.options.clients)
    if ctx.options.quick:
        count = 1000
    for admission, env in ADMISSIONS.items():
        await one_storm(ctx, result, count, admission, env)


async def one_storm(
    ctx: Context, result: ScenarioResult, count: int, admission: str, env: dict[str, str]
) -> None:
    done = await storm_onto(
        ctx.redis_url, (ctx.plan.rest, ctx.plan.server), ctx.log_dir, count, env
    )
    if not done.primed:
        result.notes.append("some clients never got an offset in both rooms before the kill")
    result.tables.append(table(done, admission))


@dataclass(frozen=True, slots=True)
class Outcome:
    """One storm: the clients' report, and gateway B's CPU and CPU wait during it."""

    report: Report
    cpu_s: float
    #: Share of the storm B was runnable but waited for a core (a shared machine's mark).
    waited_pct: float
    #: Whether every client held an offset in both its rooms before the kill.
    primed: bool


#: Started with gateway B's pid as the storm begins, stopped once it is over (a profiler).
Watch = Callable[[int], AbstractContextManager[object]]


async def storm_onto(
    redis_url: str,
    cores: tuple[Sequence[int] | None, Sequence[int] | None],
    log_dir: Path,
    count: int,
    env: Mapping[str, str],
    watch: Watch | None = None,
) -> Outcome:
    """One storm: ``count`` clients on A (``cores[0]``), A killed, all onto B (``cores[1]``)."""
    a = servers.FleetcastGateway(redis_url, cores[0], log_dir, gateway_id="storm-a")
    b = servers.FleetcastGateway(redis_url, cores[1], log_dir, gateway_id="storm-b", extra_env=env)
    redis = aioredis.Redis.from_url(redis_url)
    users = [f"unit-{i}" for i in range(count)]
    storm = Storm(
        Plan(count, org=ORG, org_events_per_s=5, user_events_per_s=200),
        [tokens.token(user, ORG, ["field_unit"]) for user in users],
        users,
        ConsumerScript(redis),
    )
    try:
        await a.start()
        await b.start()
        connected = await storm.connect(a.port, within_s=300)
        measure.say(f"storm-pod: {connected}/{count} on gateway A")
        primed = await storm.prime()
        with watch(b.pid) if watch is not None else contextlib.nullcontext():
            before = procs.CpuSample.take([b.pid])
            outcome = await storm.run(lambda: os.kill(a.pid, signal.SIGKILL), b.port)
            after = procs.CpuSample.take([b.pid])
        measure.say(f"storm-pod: {outcome.as_dict()}")
        return Outcome(outcome, after.since(before, b.pid), after.waited_pct(before, b.pid), primed)
    finally:
        await storm.close()
        a.stop()
        b.stop()
        await redis.aclose()


def table(done: Outcome, admission: str) -> Table:
    r, cpu_s = done.report, done.cpu_s

    def seconds(share: str) -> str:
        value = r.time_to.get(share)
        return "never" if value is None else f"{value:.2f}"

    rows = [
        ["clients on A before the kill", f"{r.connected_before:,}"],
        ["reconnected to B", f"{r.reconnected:,}"],
        [
            "time to 50% / 99% / 100% reconnected (s)",
            f"{seconds('50%')} / {seconds('99%')} / {seconds('100%')}",
        ],
        ["rate_limited refusals (clients refused)", f"{r.refusals:,} ({r.refused_clients:,})"],
        ["most refusals of one client", str(r.max_refusals_per_client)],
        [
            "retry_after given min / max (s)",
            f"{r.retry_after_s.get('min')} / {r.retry_after_s.get('max')}",
        ],
        ["attempts answered 503 by the overload guard", f"{r.overloaded:,}"],
        ["failed attempts (503s, timeouts, resets)", f"{r.connect_failures:,}"],
        [
            "events published (org-wide / to one user)",
            f"{r.published_org:,} / {r.published_user:,}",
        ],
        ["events lost by clients that resumed with since", f"{r.lost:,}"],
        ["clients whose resume found a gap", f"{r.not_recovered:,}"],
        ["duplicates (same event id twice)", f"{r.duplicates:,}"],
        ["gateway B CPU during the storm (s)", report.num(cpu_s)],
        ["gateway B CPU per resume (µs)", report.num(cpu_s / max(1, r.reconnected) * 1e6)],
        ["gateway B runnable but waiting for a core (% of the storm)", f"{done.waited_pct:.0f}"],
    ]
    return Table(
        f"storm-pod: {r.clients:,} clients, gateway A SIGKILLed, all onto gateway B "
        f"(admission {admission})",
        ["figure", "value"],
        rows,
        note="B is one gateway process on one core; each resume replays the org and user "
        "rooms' history after the client's offsets.",
    )


SCENARIO = Scenario(
    name=NAME,
    title="Storm: 5,000 clients lose their gateway and resume on another",
    about=common.about(__doc__),
    run=run,
)
