"""The measuring steps every socket scenario is made of.

``connect`` turns K client specs into subscribed connections and reads the
RSS they cost; ``prime`` proves the server is listening to the rooms before
anything counts; ``deliver`` runs one publishing phase and reads the server's
CPU and the clients' accounting. All waits are bounded.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from bench import procs, prom, stats
from bench.events import CATEGORIES, BenchEvent
from bench.loadgen.client import ClientSpec
from bench.loadgen.control import LoadGen
from bench.results import Connections, Delivery
from bench.servers import Server
from bench.stats import LatencySummary

#: Idle time after connecting before RSS is read: lets allocators settle.
SETTLE_S = 2.0
#: Longest wait for the deliveries of one phase after its last publish.
DRAIN_S = 30.0
PRIME_ATTEMPTS = 5


def say(text: str) -> None:
    """Progress on the terminal: a long run should never look hung."""
    print(f"   {text}", flush=True)


def expected_deliveries(specs: Sequence[ClientSpec], batch: Sequence[BenchEvent]) -> int:
    """How many deliveries ``batch`` must produce: each client once per event of its rooms."""
    by_room: dict[str, set[int]] = {}
    for event in batch:
        for room in event.rooms:
            by_room.setdefault(room, set()).add(event.seq)
    cache: dict[tuple[str, ...], int] = {}
    total = 0
    for spec in specs:
        if spec.rooms not in cache:
            cache[spec.rooms] = len(set().union(*(by_room.get(r, set()) for r in spec.rooms)))
        total += cache[spec.rooms]
    return total


def delivers_per_channel(server: Server) -> bool:
    """Whether the server sends one copy per channel a client shares with an event.

    Centrifugo's broadcast is one publication per channel; fleetcast and Node
    deliver an event once per client, so copies stay duplicates for them.
    """
    return server.protocol == "centrifugo"


async def connect(
    scenario: str,
    server: Server,
    loadgen: LoadGen,
    specs: Sequence[ClientSpec],
    *,
    concurrency: int = 100,
) -> Connections:
    """Connect and subscribe ``specs``; RSS per connection is (RSS after - RSS before) / K."""
    rss_base = procs.rss_bytes(server.pid)
    before = procs.CpuSample.take([server.pid])
    result = await loadgen.connect(
        server.host,
        server.port,
        server.path,
        specs,
        concurrency=concurrency,
        within_s=60.0 + len(specs) / 50,
        protocol=server.protocol,
    )
    after = procs.CpuSample.take([server.pid])
    await asyncio.sleep(SETTLE_S)
    idle = procs.CpuSample.take([server.pid])
    rss_loaded = procs.rss_bytes(server.pid)
    say(
        f"{server.name} K={len(specs)}: {result.connected} connected, {result.failed} failed "
        f"{result.errors or ''} in {result.elapsed_s:.1f}s"
    )
    return Connections(
        scenario=scenario,
        server=server.name,
        clients=len(specs),
        connected=result.connected,
        failed=result.failed,
        errors=result.errors,
        connect_s=result.elapsed_s,
        handshake_cpu_us=stats.cpu_us_per_delivery(
            after.since(before, server.pid), result.connected
        ),
        rss_base=rss_base,
        rss_loaded=rss_loaded,
        rss_per_conn=stats.bytes_per_connection(rss_loaded, rss_base, result.connected),
        idle_cpu_pct=100 * idle.since(after, server.pid) / (idle.at - after.at),
    )


async def prime(
    loadgen: LoadGen,
    specs: Sequence[ClientSpec],
    event: BenchEvent,
    send: Callable[[Sequence[BenchEvent]], Awaitable[int]],
) -> int:
    """Publish one event until every client that should get it did.

    Pub/sub drops what is published before a server subscribed to the org
    channel; this makes sure the measured phase starts after that. Returns
    how many clients got it at the last attempt (all that should: done).
    """
    want = expected_deliveries(specs, [event])
    for _ in range(PRIME_ATTEMPTS):
        await loadgen.arm(1)
        await send([event])
        progress = await loadgen.wait_for(want, deadline_s=3.0, idle_s=1.0)
        if progress.deliveries >= want:
            return want
        say(f"priming again ({progress.deliveries}/{want} received)")
    return progress.deliveries


async def deliver(
    scenario: str,
    phase: str,
    server: Server,
    loadgen: LoadGen,
    specs: Sequence[ClientSpec],
    batch: Sequence[BenchEvent],
    publish: Callable[[], Awaitable[int]],
    *,
    offered_per_s: float = math.nan,
    raw: Path | None = None,
    extra_pids: Sequence[int] = (),
) -> Delivery:
    """Run one phase: arm, publish, wait for every expected delivery, account."""
    want = expected_deliveries(specs, batch)
    await loadgen.arm(len(batch))
    pids = [server.pid, loadgen.pid, *extra_pids]
    counters = await server.counters()
    before = procs.CpuSample.take(pids)
    published = await publish()
    await loadgen.wait_for(want, deadline_s=DRAIN_S, idle_s=5.0)
    after = procs.CpuSample.take(pids)
    moved = prom.changes(counters, await server.counters())
    report = await loadgen.collect(
        [e.rooms for e in batch],
        [e.category for e in batch],
        CATEGORIES,
        str(raw) if raw else None,
        per_channel=delivers_per_channel(server),
    )
    acc = report["accounting"]
    say(
        f"{server.name} K={len(specs)} {phase}: {acc['received']}/{want} deliveries, "
        f"{acc['lost']} lost, {report['closed_clients']} cut off"
        + (f", {acc['room_copies']} room copies" if acc["room_copies"] else "")
    )
    start_ns = int(before.at * 1e9)
    window_s = max(1e-9, (report["last_ns"] - start_ns) / 1e9) if report["last_ns"] else math.nan
    elapsed = after.at - before.at
    server_cpu = after.since(before, server.pid)
    return Delivery(
        scenario=scenario,
        server=server.name,
        clients=len(specs),
        phase=phase,
        published=published,
        offered_per_s=offered_per_s,
        expected=want,
        received=acc["received"],
        lost=acc["lost"],
        duplicated=acc["duplicated"],
        room_copies=acc["room_copies"],
        unexpected=acc["unexpected"],
        clients_with_loss=acc["clients_with_loss"],
        lost_by_category=acc["lost_by_category"],
        closed_clients=report["closed_clients"],
        closes=report["closes"],
        window_s=window_s,
        deliveries_per_s=stats.rate(acc["received"], window_s),
        server_cpu_s=server_cpu,
        cpu_us_per_delivery=stats.cpu_us_per_delivery(server_cpu, acc["received"]),
        server_cpu_pct=100 * server_cpu / elapsed,
        loadgen_cpu_pct=100 * after.since(before, loadgen.pid) / elapsed,
        others_cores=after.others_cores(before),
        server_wait_pct=after.waited_pct(before, server.pid),
        loadgen_wait_pct=after.waited_pct(before, loadgen.pid),
        latency_us={k: LatencySummary.from_dict(v) for k, v in report["latency_us"].items()},
        server_counters=moved,
    )
