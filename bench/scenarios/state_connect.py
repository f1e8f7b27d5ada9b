"""Scenario: state-connect, what the whole picture on connect costs a gateway.

One org of 2,500 assets (each with a position and a status in the fleet
snapshot), 60 open incidents and 20 active alerts, every client with an open
task, all written by the consumer's own script. Clients connect to one fresh
gateway process per mode, 200 at a time (a reconnect storm's shape):

- ``plain``: a field unit's connect (org and user rooms, no state);
- ``state``: the same with ``auth.state`` (incidents, alerts and its tasks);
- ``console``: a dispatcher with ``auth.state`` that then joins the fleet room
  (its snapshot of 2,500 assets).

Reports gateway CPU per connect (its process CPU over the phase, divided by
the clients) and bytes per client (all received, and the snapshots').
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Sequence
from typing import Any, Final

import redis.asyncio as aioredis

from bench import measure, procs, servers, tokens
from bench.context import Context
from bench.loadgen import codec
from bench.registry import Scenario
from bench.results import ScenarioResult, Table
from bench.scenarios import common
from bench.storm.run import ConsumerScript, Plan, Storm

NAME = "state-connect"
ORG: Final = "org-state"
ASSETS, INCIDENTS, ALERTS = 2500, 60, 20
CLIENTS: Final = 1000
#: mode -> (roles, more auth, packet once in session, snapshot events to wait for)
MODES: Final = {
    "plain": (["field_unit"], {}, b"", 0),
    "state": (["field_unit"], {"state": True}, b"", 3),
    "console": (
        ["dispatcher"],
        {"state": True},
        codec.sio_event("subscribe", {"room": "fleet"}, ack_id=1),
        3,  # incidents, alerts, tasks; the fleet's snapshot is counted by its bytes
    ),
}


_serial = itertools.count()


def envelope(event_type: str, **data: Any) -> dict[str, Any]:
    return {
        "event_id": f"state-{next(_serial)}",
        "event_type": event_type,
        "organization_id": ORG,
        "occurred_at": "2026-12-07T08:00:00Z",
        "data": data,
    }


def org_state(users: Sequence[str]) -> list[dict[str, Any]]:
    """The envelopes that make the org's state: assets, incidents, alerts, one task per user."""
    docs = []
    for n in range(ASSETS):
        asset = f"unit-{n}"
        docs.append(
            envelope(
                "asset_position_updated",
                asset_id=asset,
                lat=40.0 + n / 10_000,
                lon=-74.0 - n / 10_000,
                speed=8.5,
            )
        )
        docs.append(envelope("asset_status_changed", asset_id=asset, status="available"))
    for n in range(INCIDENTS):
        docs.append(
            envelope(
                "incident_created",
                incident_id=f"inc-{n}",
                priority=2,
                status="dispatched",
                title="structure fire, 2nd alarm",
                address=f"{100 + n} Main St",
            )
        )
    for n in range(ALERTS):
        docs.append(
            envelope(
                "alert_created",
                alert_id=f"al-{n}",
                severity="high",
                message="officer needs assistance",
            )
        )
    for n, user in enumerate(users):
        docs.append(
            envelope(
                "task_assigned",
                task_id=f"tk-{n}",
                user_id=user,
                title="check hydrant",
                incident_id=f"inc-{n % INCIDENTS}",
            )
        )
    return docs  # fmt: skip


async def run(ctx: Context, result: ScenarioResult) -> None:
    count = 300 if ctx.options.quick else CLIENTS
    users = [f"user-{i}" for i in range(count)]
    redis = aioredis.Redis.from_url(ctx.redis_url)
    try:
        docs = org_state(users)
        publish = ConsumerScript(redis)
        for start in range(0, len(docs), 1000):
            await publish(docs[start : start + 1000])
        rows = []
        for mode in MODES:
            rows.append(await measure_mode(ctx, mode, users))
            measure.say(f"{NAME}: {rows[-1]}")
        result.tables.append(
            Table(
                f"{NAME}: {count:,} connects to one gateway, org of {ASSETS:,} assets, "
                f"{INCIDENTS} incidents, {ALERTS} alerts",
                ["mode", "connected", "gateway CPU per connect (µs)", "bytes per client",
                 "snapshot bytes per client", "seconds"],
                rows,
                note="CPU: the gateway process's over the phase (connects, snapshots, pings) "
                "divided by the clients; bytes: everything a client received, upgrade included.",
            )
        )  # fmt: skip
    finally:
        await redis.aclose()


async def measure_mode(ctx: Context, mode: str, users: Sequence[str]) -> list[str]:
    roles, auth, after_session, snapshots = MODES[mode]
    gateway = servers.FleetcastGateway(ctx.redis_url, ctx.plan.server, ctx.log_dir,
                                       gateway_id=f"state-{mode}")  # fmt: skip
    storm = Storm(Plan(len(users), org=ORG), [tokens.token(u, ORG, roles) for u in users], users,
                  ConsumerScript(None))  # fmt: skip
    for client in storm.clients:
        client.auth, client.after_session = auth, after_session
    try:
        await gateway.start()
        before, started = procs.CpuSample.take([gateway.pid]), time.monotonic()
        connected = await storm.connect(gateway.port, within_s=120)
        await settled(storm, snapshots, fleet=bool(after_session))
        elapsed = time.monotonic() - started
        cpu = procs.CpuSample.take([gateway.pid]).since(before, gateway.pid)
    finally:
        await storm.close()
        gateway.stop()
    clients = storm.clients
    total = sum(c.bytes_in for c in clients) / len(clients)
    snap = sum(sum(c.snapshots.values()) for c in clients) / len(clients)
    return [mode, f"{connected:,}", f"{cpu / len(clients) * 1e6:,.0f}", f"{total:,.0f}",
            f"{snap:,.0f}", f"{elapsed:.2f}"]  # fmt: skip


async def settled(storm: Storm, snapshots: int, *, fleet: bool, within_s: float = 60.0) -> None:
    """Until every ready client has its snapshots (and the fleet's, if it asked)."""
    end = time.monotonic() + within_s
    wanted = snapshots + (1 if fleet else 0)
    while time.monotonic() < end:
        if all(len(c.snapshots) >= wanted for c in storm.clients if c.ready):
            await asyncio.sleep(0.5)  # what is still on its way
            return
        await asyncio.sleep(0.05)
    measure.say(f"{NAME}: not every client got its snapshots within {within_s:.0f} s")


SCENARIO = Scenario(
    name=NAME,
    title="State on connect: the whole picture for a 2,500-asset org, per connect",
    about=common.about(__doc__),
    run=run,
)
