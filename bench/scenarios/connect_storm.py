"""Scenario: connect-storm, K clients of one org connecting at once onto a fresh server.

What a gateway faces when a pod's clients come back or a shift starts: 5,000
dispatchers of one org (`--clients` respected) open their connections all at
once, 1,000 in flight, onto a server just started (no warm-up), each
subscribing to its rooms (fleetcast and Node: `channel:ch-1`, the org and
user rooms are automatic; Centrifugo: all three channels in one frame). A
failed attempt (refused, reset, timed out, 503, `rate_limited`) is retried
after socket.io-client's backoff, as the storm's clients do (1 s doubling to
5 s, ±50%). Reports the time until 50/99/100% were ready, connects/s, the
server's CPU per connect and the failed attempts, for every server, with
ratios to Centrifugo. fleetcast's admission is opened wide, as in the bench's
other scenarios (`bench/servers.py` `gateway_env`): this measures how fast
one process takes connections, not its admission policy (storm-pod does).
Its overload guard (HTTP 503 while the event loop lags more than 0.25 s)
keeps its default there; a second fleetcast row runs with the guard off too
(`FLEETCAST_OVERLOAD_LAG_S=0`), so the table shows what the guard costs a
storm and what the process takes when nothing refuses.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bench import measure, procs, report, stats
from bench.context import Context
from bench.loadgen.backoff import Backoff
from bench.loadgen.client import ClientSpec
from bench.loadgen.control import ConnectResult
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common

NAME = "connect-storm"
ORG = "org-connect-storm"
CLIENTS = 5000
QUICK_CLIENTS = 1000
#: Connections in flight at once: a storm, not a queue.
CONCURRENCY = 1000
#: Attempts per client; with the backoff capped at 5 s, ~30 s of retrying.
ATTEMPTS = 8
#: One attempt's limit: upgrade, connect and every subscribe answered.
ATTEMPT_TIMEOUT_S = 20.0
BACKOFF = Backoff(delay_s=1.0, max_s=5.0, randomization=0.5)
PEER = report.PEER
#: The extra fleetcast run: same gateway, its overload guard off.
GUARD_OFF = "fleetcast, overload guard off"
GUARD_OFF_ENV = {"FLEETCAST_OVERLOAD_LAG_S": "0"}


@dataclass(frozen=True, slots=True)
class StormFigures:
    """One server's storm: what the load generator saw and what the server spent."""

    server: str
    clients: int
    connected: int
    errors: dict[str, int]
    retried: dict[str, int]
    time_to: dict[str, float | None]
    elapsed_s: float
    server_cpu_s: float
    loadgen_cpu_pct: float

    @property
    def connects_per_s(self) -> float:
        """Clients ready per second until the last one was (its time to 100%)."""
        last = self.time_to.get("100%")
        return stats.rate(self.connected, last if last is not None else self.elapsed_s)

    @property
    def cpu_us_per_connect(self) -> float:
        return stats.cpu_us_per_delivery(self.server_cpu_s, self.connected)


def figures(
    server: str, got: ConnectResult, server_cpu_s: float, loadgen_cpu_pct: float, clients: int
) -> StormFigures:
    return StormFigures(
        server=server,
        clients=clients,
        connected=got.connected,
        errors=got.errors,
        retried=got.retried,
        time_to=stats.times_to_shares(got.ready_s, clients),
        elapsed_s=got.elapsed_s,
        server_cpu_s=server_cpu_s,
        loadgen_cpu_pct=loadgen_cpu_pct,
    )


async def run(ctx: Context, result: ScenarioResult) -> None:
    count = max(ctx.options.clients) if ctx.options.clients else CLIENTS
    if ctx.options.quick and not ctx.options.clients:
        count = QUICK_CLIENTS
    specs = common.client_specs(count, ORG)
    found: list[StormFigures] = []
    try:
        for name in ctx.options.servers:
            found.append(await one_server(ctx, name, specs))
            if name == "fleetcast":
                found.append(await one_server(ctx, name, specs, GUARD_OFF, GUARD_OFF_ENV))
    finally:  # what was measured before a failure is reported
        if found:
            result.tables += [figures_table(found), ratios_table(found)]


async def one_server(
    ctx: Context,
    name: str,
    specs: list[ClientSpec],
    label: str = "",
    extra_env: dict[str, str] | None = None,
) -> StormFigures:
    """One storm onto a fresh ``name`` (reported as ``label``, default the name)."""
    label = label or name
    async with ctx.serving(name, extra_env) as (server, loadgen):
        pids = [server.pid, loadgen.pid]
        before = procs.CpuSample.take(pids)
        got = await loadgen.connect(
            server.host,
            server.port,
            server.path,
            specs,
            concurrency=CONCURRENCY,
            within_s=ATTEMPTS * (ATTEMPT_TIMEOUT_S + BACKOFF.max_s) + 60.0,
            protocol=server.protocol,
            backoff=BACKOFF,
            attempts=ATTEMPTS,
            times=True,
        )
        after = procs.CpuSample.take(pids)
        elapsed = after.at - before.at
        found = figures(
            label,
            got,
            after.since(before, server.pid),
            100 * after.since(before, loadgen.pid) / elapsed,
            len(specs),
        )
        await loadgen.close_all()
    measure.say(
        f"{NAME} {label} K={len(specs)}: {got.connected} ready, {got.failed} failed, "
        f"times {found.time_to}, retried {got.retried}"
    )
    return found


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.2f}"


def _counts(found: dict[str, int]) -> str:
    if not found:
        return "0"
    total = sum(found.values())
    return f"{total:,} ({', '.join(f'{k}: {v:,}' for k, v in sorted(found.items()))})"


def figures_table(found: list[StormFigures]) -> Table:
    headers = ["server", "K", "ready", "failed clients", "failed attempts retried"]
    headers += ["50% / 99% / 100% ready (s)", "connects/s", "server CPU s"]
    headers += ["CPU µs/connect", "loadgen CPU %"]
    rows = [
        [
            f"{f.server} ({'cores 0+1' if f.server == PEER else 'core 0'})",
            f"{f.clients:,}",
            f"{f.connected:,}",
            _counts(f.errors),
            _counts(f.retried),
            " / ".join(_seconds(f.time_to.get(s)) for s in ("50%", "99%", "100%")),
            report.num(f.connects_per_s, 0),
            report.num(f.server_cpu_s, 2),
            report.num(f.cpu_us_per_connect, 0),
            report.num(f.loadgen_cpu_pct, 0),
        ]
        for f in found
    ]
    return Table(
        f"{NAME}: clients of one org connecting at once ({CONCURRENCY:,} in flight) "
        "onto a freshly started server",
        headers,
        rows,
        note="Centrifugo uses both cores (taskset 0,1, GOMAXPROCS 2; it shares core 1 with "
        "the load generator); fleetcast and Node one (core 0). fleetcast's admission is opened "
        "wide (bench/servers.py gateway_env); its overload guard (503 while the loop lags "
        "> 0.25 s) keeps its default, except in the 'guard off' row. "
        "connects/s = ready clients / time to 100%. "
        "Failed attempts are retried after socket.io-client's backoff (1 s doubling to 5 s, "
        "±50%), so a refused or dropped attempt costs a client seconds.",
    )


def ratios_table(found: list[StormFigures]) -> Table:
    """Every other server over Centrifugo: connects/s (above 1.00x is better), CPU, time to 99%."""
    peer = next((f for f in found if f.server == PEER), None)
    rows = []
    for f in found:
        if peer is None or f is peer:
            continue
        rows.append(
            [
                f"{f.server} / {PEER}",
                report.ratio_text(stats.ratio(f.connects_per_s, peer.connects_per_s)),
                report.ratio_text(stats.ratio(f.cpu_us_per_connect, peer.cpu_us_per_connect)),
                report.ratio_text(stats.ratio(_t99(f), _t99(peer))),
            ]
        )
    return Table(
        f"{NAME}: ratios to Centrifugo",
        ["pair", "connects/s (above 1.00x is better)", "CPU/connect", "time to 99%"],
        rows,
        note="" if peer else "Centrifugo did not run: no ratios.",
    )


def _t99(f: StormFigures) -> float:
    value = f.time_to.get("99%")
    return math.nan if value is None else value


SCENARIO = Scenario(
    name=NAME,
    title="Connect storm: K clients of one org connecting at once onto a fresh server",
    about=common.about(__doc__),
    run=run,
)
