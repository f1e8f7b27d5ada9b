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

Centrifugo beside it (when it is among `--servers`): the same clients, plan
and backoff against two Centrifugo nodes on one Redis engine, A on the load
core, B on both cores; the namespace keeps history (`history_size`,
`history_ttl`, `force_recovery`) and the events come through B's HTTP API
(org events to the org channel, the others to the user's). A is SIGKILLed;
every client resubscribes on B with `recover`, its last `offset` and the
channel's `epoch`, and gets what it missed in the subscribe reply.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import signal
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis

from bench import measure, procs, publish, report, servers, tokens
from bench.context import Context
from bench.loadgen import centrifugo_codec as cf
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common
from bench.storm.centrifugo_client import CentrifugoResumingClient
from bench.storm.run import ConsumerScript, Plan, Report, Storm
from fleetcast.protocol import rooms

NAME = "storm-pod"
CLIENTS = 5000
ORG = "org-storm"
#: B's admission in each storm: the defaults, then nothing held back.
ADMISSIONS = {
    "defaults (500 handshakes/s after a burst of 1,000)": servers.DEFAULT_ADMISSION,
    "opened wide": {"FLEETCAST_HANDSHAKE_RATE": "1000000", "FLEETCAST_HANDSHAKE_BURST": "1000000"},
}


async def run(ctx: Context, result: ScenarioResult) -> None:
    count = CLIENTS if not ctx.options.clients else max(ctx.options.clients)
    if ctx.options.quick:
        count = 1000
    if "fleetcast" in ctx.options.servers:
        for admission, env in ADMISSIONS.items():
            await one_storm(ctx, result, count, admission, env)
    if "centrifugo" in ctx.options.servers:
        await centrifugo_storm(ctx, result, count)


def plan(count: int) -> Plan:
    return Plan(count, org=ORG, org_events_per_s=5, user_events_per_s=200)


async def one_storm(
    ctx: Context, result: ScenarioResult, count: int, admission: str, env: dict[str, str]
) -> None:
    done = await storm_onto(
        ctx.redis_url, (ctx.plan.rest, ctx.plan.server), ctx.log_dir, count, env
    )
    if not done.primed:
        result.notes.append("some clients never got an offset in both rooms before the kill")
    result.tables.append(
        table(done, f"gateway A SIGKILLed, all onto gateway B (admission {admission})")
    )


@dataclass(frozen=True, slots=True)
class Outcome:
    """One storm: the clients' report, and B's CPU and CPU wait during it."""

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
        plan(count),
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
            outcome = await killed(storm, a.pid, b)
        measure.say(f"storm-pod: {outcome.report.as_dict()}")
        return dataclasses.replace(outcome, primed=primed)
    finally:
        await storm.close()
        a.stop()
        b.stop()
        await redis.aclose()


class CentrifugoEvents:
    """The storm's envelopes through Centrifugo's API: to the named user's channel, or the org's."""

    def __init__(self, publisher: publish.CentrifugoPublisher, org: str) -> None:
        self.publisher = publisher
        self.org = org

    def channel(self, doc: dict[str, Any]) -> str:
        user = doc.get("data", {}).get("user_id")
        room = rooms.user_room(user, self.org) if user else rooms.org_room(self.org)
        return cf.channel(room.name)

    async def __call__(self, docs: list[dict[str, Any]]) -> None:
        commands = [{"publish": {"channel": self.channel(d), "data": d}} for d in docs]
        await self.publisher.commands(commands)


async def centrifugo_storm(ctx: Context, result: ScenarioResult, count: int) -> None:
    """Centrifugo's storm: node A killed, its clients resubscribe on B with recovery."""
    make = functools.partial(
        servers.CentrifugoServer, ctx.redis_url, log_dir=ctx.log_dir, history=True
    )
    a = make(ctx.plan.rest, instance="centrifugo-storm-a")
    b = make(ctx.plan.every, instance="centrifugo-storm-b")
    users = [f"unit-{i}" for i in range(count)]
    org_channel = cf.channel(rooms.org_room(ORG).name)

    def client(index: int, token: str) -> CentrifugoResumingClient:
        user_channel = cf.channel(rooms.user_room(users[index], ORG).name)
        return CentrifugoResumingClient(index, token, [org_channel, user_channel])

    publisher: publish.CentrifugoPublisher | None = None
    storm: Storm | None = None
    try:
        await a.start()
        await b.start()
        publisher = publish.CentrifugoPublisher(
            f"http://127.0.0.1:{b.port}/api", servers.CENTRIFUGO_API_KEY
        )
        storm = Storm(
            plan(count),
            [tokens.token(user, ORG, ["field_unit"]) for user in users],
            users,
            CentrifugoEvents(publisher, ORG),
            make_client=client,
        )
        connected = await storm.connect(a.port, within_s=300)
        measure.say(f"storm-pod centrifugo: {connected}/{count} on node A")
        if not await storm.prime():
            result.notes.append(
                "centrifugo: some clients never got an offset in both channels before the kill"
            )
        outcome = await killed(storm, a.pid, b)
        result.tables.append(
            table(
                outcome,
                "Centrifugo node A SIGKILLed, all onto node B (history + recovery)",
                centrifugo=True,
            )
        )
        measure.say(f"storm-pod centrifugo: {outcome.report.as_dict()}")
    finally:
        if storm is not None:
            await storm.close()
        if publisher is not None:
            await publisher.close()
        a.stop()
        b.stop()


async def killed(storm: Storm, a_pid: int, b: servers.Server) -> Outcome:
    """SIGKILL A, run the storm onto B, and measure B's CPU and CPU wait meanwhile."""
    before = procs.CpuSample.take([b.pid])
    report = await storm.run(lambda: os.kill(a_pid, signal.SIGKILL), b.port)
    after = procs.CpuSample.take([b.pid])
    return Outcome(report, after.since(before, b.pid), after.waited_pct(before, b.pid), True)


def table(done: Outcome, what: str, *, centrifugo: bool = False) -> Table:
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
        ["B CPU during the storm (s)", report.num(cpu_s)],
        ["B CPU per resume (µs)", report.num(cpu_s / max(1, r.reconnected) * 1e6)],
        ["B runnable but waiting for a core (% of the storm)", f"{done.waited_pct:.0f}"],
    ]
    note = (
        "B is one Centrifugo node on both cores (taskset 0,1; it shares core 1 with A until "
        "A dies, and with the clients); each resume is a connect and two subscribes with "
        "recover/offset/epoch, answered from the channels' history in Redis. "
        "B also serves the HTTP API "
        "publishes of the storm's events (~200/s) throughout, which fleetcast's B does not "
        "(its events come from Redis): that is in B's CPU."
        if centrifugo
        else "B is one gateway process on one core; each resume replays the org and user "
        "rooms' history after the client's offsets."
    )
    return Table(f"storm-pod: {r.clients:,} clients, {what}", ["figure", "value"], rows, note=note)


SCENARIO = Scenario(
    name=NAME,
    title="Storm: 5,000 clients lose their gateway and resume on another",
    about=common.about(__doc__),
    run=run,
)
