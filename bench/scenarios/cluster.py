"""Scenario: one Redis vs a 3-master Redis Cluster, the consumer's publish path.

Both run in the same process, one after the other: a fresh redis-server, then
a fresh cluster of 3 masters and 3 replicas (bench's own, on loopback). The
consumer's own publisher (Encoder, the one-Redis or the cluster Sender, the
publish script) sends batches of 500 alert and position events of 30 orgs as
fast as one asyncio task can, for a fixed number of events, Kafka left out
(the consumer scenario measures Kafka). Reported: events/s, and per
redis-server its CPU per event (utime+stime from /proc/<pid>/stat over the
run, divided by the events of the run) and its share of the events (keys
per master from DBSIZE-free counting: the orgs' slots), so the split across
shards shows. Replicas' CPU is reported too: replication is part of the cost.
Two workloads, each on both: plain events, then the same with every alert
also merging its record into the org's alerts table (the state tables the
gateways serve on connect), so the cost of a state change shows.
"""

from __future__ import annotations

import os
import time
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.crc import key_slot

from bench import measure, report
from bench.context import Context
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common
from fleetcast.common import redisurl
from fleetcast.consumer import processing, publishing, sending, state
from fleetcast.devtools.redis import RedisClusterServer, RedisServer
from fleetcast.protocol import events, keys, routing

NAME = "cluster"
EVENTS = 200_000
QUICK_EVENTS = 20_000
BATCH = 500
ORGS = 30
ROUTER = processing.Router(routing.RoutingTable.default())
TICKS = os.sysconf("SC_CLK_TCK")
COLUMNS = [
    "workload",
    "setup",
    "role",
    "share of events",
    "events/s (all)",
    "CPU µs per event it served",
]


def batches(count: int, stateful: bool = False) -> list[list[processing.Routed]]:
    """``count`` events in batches: every 4th an alert, the rest positions, orgs in turn;
    ``stateful``: each alert opens (merges) an entry of its org's alerts table."""
    out, batch = [], []
    for n in range(count):
        org = f"org-{n % ORGS}"
        kind = "alert_created" if n % 4 == 0 else "asset_position_updated"
        doc = {"event_id": f"e{n}", "event_type": kind, "organization_id": org,
               "occurred_at": "2026-11-25T18:00:00Z",
               "data": {"asset_id": f"u-{n % 500}", "lat": 1.0, "lon": 2.0}}  # fmt: skip
        raw = orjson.dumps(doc)
        route = ROUTER.route(events.decode_envelope(raw))
        item = processing.Routed(route, raw, "t", n % 3, n)
        if stateful and kind == "alert_created":
            item.state = (state.Op(state.MERGE, state.ALERTS, f"a-{n % 200}"),)
        batch.append(item)
        if len(batch) == BATCH:
            out.append(batch)
            batch = []
    return out + ([batch] if batch else [])


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


async def drive(sender: Any, work: list[list[processing.Routed]]) -> float:
    publisher = publishing.RedisPublisher(sender, cluster_id=f"bench-{time.time_ns()}")
    started = time.monotonic()
    for batch in work:
        await publisher.publish_events(batch)
    return time.monotonic() - started


async def run(ctx: Context, result: ScenarioResult) -> None:
    count = QUICK_EVENTS if ctx.options.quick else EVENTS
    rows = []
    for workload, stateful in (("events", False), ("alerts keep state", True)):
        rows += await measure_workload(workload, batches(count, stateful), count)
    result.tables.append(
        Table(
            "Publish path (consumer's publisher, no Kafka): 1 Redis vs 3 masters",
            COLUMNS,
            rows,
            note=f"{count:,} events, batches of {BATCH}, {ORGS} orgs; one asyncio task; "
            "'alerts keep state': every alert (1 in 4 events) merges its state record.",
        )
    )


async def measure_workload(
    workload: str, work: list[list[processing.Routed]], count: int
) -> list[list[str]]:
    """One workload on a fresh Redis, then on a fresh 3+3 cluster: a row per server."""
    rows = []
    with RedisServer() as single:
        assert single.pid is not None
        client = Redis.from_url(single.url)
        before = cpu_s(single.pid)
        seconds = await drive(sending.SingleSender(client, 5.0), work)
        used = cpu_s(single.pid) - before
        await client.aclose()
        rows.append([workload, "1 Redis", "master", "100 %", report.num(count / seconds, 0),
                     report.num(used / count * 1e6, 1)])  # fmt: skip
        measure.say(f"{workload}, 1 Redis: {count / seconds:,.0f} events/s")
    with RedisClusterServer() as cluster:
        target = redisurl.parse(cluster.url)
        cluster_client = redisurl.cluster_client(target)
        pids = {node.port: node.pid for node in cluster.nodes}
        before_all = {port: cpu_s(pid) for port, pid in pids.items() if pid}
        seconds = await drive(sending.ClusterSender(cluster_client, 5.0), work)
        after_all = {port: cpu_s(pid) for port, pid in pids.items() if pid}
        await cluster_client.aclose()
        share = shares(cluster)
        measure.say(f"{workload}, 3 masters: {count / seconds:,.0f} events/s")
        for node in cluster.nodes:
            role = "master" if cluster.command(node, "ROLE").startswith("master") else "replica"
            used = after_all[node.port] - before_all[node.port]
            events = share.get(node.port, 0) * count if role == "master" else 0
            rows.append([workload, f"3 masters :{node.port}", role,
                         f"{share.get(node.port, 0) * 100:.0f} %" if role == "master" else "—",
                         report.num(count / seconds, 0) if role == "master" else "—",
                         report.num(used / events * 1e6, 1) if events else
                         report.num(used / count * 1e6, 1) + " (per event of all)"])  # fmt: skip
    return rows


def shares(cluster: RedisClusterServer) -> dict[int | None, float]:
    """Each master's share of the orgs (so of the events: orgs take turns)."""
    counts: dict[int | None, int] = {}
    for n in range(ORGS):
        node = cluster.master_of(key_slot(keys.tag(f"org-{n}").encode()))
        counts[node.port] = counts.get(node.port, 0) + 1
    return {port: c / ORGS for port, c in counts.items()}


SCENARIO = Scenario(
    name=NAME,
    title="Redis Cluster: 1 Redis vs 3 masters, the consumer's publish path",
    about=common.about(__doc__),
    run=run,
)
