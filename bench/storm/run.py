"""A reconnect storm: K clients on gateway A, A killed, all of them onto gateway B at once.

What a lost pod does to its peers (see the workload notes): every client of A
reconnects within 0.5-1.5 s (socket.io-client's default reconnection delay
and randomization), resuming its rooms with ``auth.since``. B's admission
control refuses what it cannot take yet (``rate_limited`` + ``retry_after``)
and the clients come back after the hint. Events keep being published
throughout, the way the consumer writes them (history + pub/sub), so the
run can count what a client that resumed with ``since`` lost: it must be 0.

Used by ``tests/integration/test_storm.py`` (1,000 clients) and the
``storm-pod`` benchmark (5,000 clients).
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen.backoff import Backoff
from bench.storm.client import ResumingClient
from bench.storm.reconnect import Reconnector
from fleetcast.devtools.script_publisher import ScriptPublisher

#: Ticks per second of the publisher during the run.
PUBLISH_TICKS_PER_S = 50

Publish = Callable[[list[dict[str, Any]]], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Plan:
    clients: int
    org: str = "org-storm"
    #: Org-wide events per second (every client gets each one).
    org_events_per_s: float = 20.0
    #: Events per second to single users (one client each).
    user_events_per_s: float = 200.0
    before_kill_s: float = 1.0
    after_kill_s: float = 3.0
    #: socket.io-client's reconnection backoff: the first delay (s), doubling per
    #: failed attempt up to the max, each randomized by ±factor (its defaults:
    #: reconnectionDelay 1000, reconnectionDelayMax 5000, randomizationFactor 0.5).
    reconnect_delay_s: float = 1.0
    reconnect_delay_max_s: float = 5.0
    randomization: float = 0.5
    connect_concurrency: int = 200
    deadline_s: float = 120.0
    seed: int = 1


@dataclass(slots=True)
class Report:
    clients: int
    connected_before: int
    reconnected: int
    #: Seconds from the kill until that share of the clients had a session on B.
    time_to: dict[str, float | None]
    refusals: int
    refused_clients: int
    max_refusals_per_client: int
    retried_early: int
    #: Attempts answered HTTP 503 by the overload guard (before any upgrade work).
    overloaded: int
    connect_failures: int
    published_org: int
    published_user: int
    #: Events of a client's rooms published while it was connected or away, never received.
    lost: int
    clients_with_loss: int
    duplicates: int
    not_recovered: int
    retry_after_s: dict[str, float | None] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


class ConsumerScript:
    """Publishes envelopes exactly as the consumer does (its own script), on a real Redis."""

    def __init__(self, redis: Any) -> None:
        self._publisher = ScriptPublisher(redis, "storm")

    async def __call__(self, docs: list[dict[str, Any]]) -> None:
        await self._publisher.publish(docs)


class Storm:
    """Drives the clients; every task it starts is its own and ends with :meth:`close`."""

    def __init__(
        self,
        plan: Plan,
        tokens: Sequence[str],
        users: Sequence[str],
        publish: Publish,
        make_client: Callable[[int, str], ResumingClient] = ResumingClient,
    ):
        """``make_client(index, token)``: fleetcast's client, or another protocol's (Centrifugo)."""
        self.plan = plan
        self.users = list(users)
        self.clients = [make_client(i, token) for i, token in enumerate(tokens)]
        self._publish = publish
        self._rng = random.Random(plan.seed)
        self._ids = itertools.count()
        backoff = Backoff(plan.reconnect_delay_s, plan.reconnect_delay_max_s, plan.randomization)
        self._reconnector = Reconnector(
            self.clients, backoff, concurrency=plan.connect_concurrency, seed=plan.seed
        )
        self.org_ids: list[str] = []
        self.user_ids: dict[int, list[str]] = {}

    # --- phases ---------------------------------------------------------------------------

    async def connect(self, port: int, within_s: float) -> int:
        """Connect every client to ``port`` (gateway A); returns how many have a session."""
        self._reconnector.ports = dict.fromkeys(range(len(self.clients)), port)
        return await self._reconnector.connect(within_s)

    async def prime(self, within_s: float = 30.0) -> bool:
        """One org event and one event per user, so every client holds an offset per room."""
        docs = [self._org_event()] + [self._user_event(i) for i in range(len(self.clients))]
        for start in range(0, len(docs), 1000):
            await self._publish(docs[start : start + 1000])
        end = time.monotonic() + within_s
        while time.monotonic() < end:
            if all(len(c.offsets) >= 2 for c in self.clients if c.ready):
                return True
            await asyncio.sleep(0.05)
        return False

    async def run(self, kill: Callable[[], None], port_b: int) -> Report:
        """Publish, kill A, let everyone reconnect to B, keep publishing, then account."""
        connected_before = sum(c.ready for c in self.clients)
        publisher = asyncio.create_task(self._publish_for(self.plan.before_kill_s))
        await publisher
        self._reconnector.move(range(len(self.clients)), port_b)
        end = time.monotonic() + self.plan.deadline_s
        kill()
        publisher = asyncio.create_task(self._publish_for(self.plan.after_kill_s))
        await self._reconnector.all_back(self.plan.deadline_s)
        await publisher
        await self._settle(end)
        return self._report(connected_before)

    async def close(self) -> None:
        await self._reconnector.close()

    # --- events --------------------------------------------------------------------------

    def _org_event(self) -> dict[str, Any]:
        n = next(self._ids)
        doc = _envelope(
            "incident_created", self.plan.org, n, incident_id=f"inc-{n}", priority=2, kind="fire"
        )
        self.org_ids.append(doc["event_id"])
        return doc

    def _user_event(self, index: int) -> dict[str, Any]:
        n = next(self._ids)
        doc = _envelope(
            "task_assigned", self.plan.org, n, task_id=f"task-{n}", user_id=self.users[index]
        )
        self.user_ids.setdefault(index, []).append(doc["event_id"])
        return doc

    async def _publish_for(self, seconds: float) -> None:
        plan, start = self.plan, time.monotonic()
        due_org = due_user = 0.0
        tick = 1.0 / PUBLISH_TICKS_PER_S
        while (elapsed := time.monotonic() - start) < seconds:
            docs = []
            while due_org <= elapsed * plan.org_events_per_s:
                docs.append(self._org_event())
                due_org += 1
            while due_user <= elapsed * plan.user_events_per_s:
                docs.append(self._user_event(self._rng.randrange(len(self.clients))))
                due_user += 1
            if docs:
                await self._publish(docs)
            await asyncio.sleep(tick)

    async def _settle(self, end: float) -> None:
        await settle(self._missing, lambda: sum(len(c.received) for c in self.clients), end)

    def _missing(self, client: ResumingClient | None = None) -> int:
        clients = self.clients if client is None else [client]
        org = set(self.org_ids)
        return sum(len((org | set(self.user_ids.get(c.index, ()))) - c.received) for c in clients)

    def _report(self, connected_before: int) -> Report:
        refusals = [len(c.refusals) for c in self.clients]
        hints = sorted(h for c in self.clients for h in c.refusals)
        losses = [self._missing(c) for c in self.clients]
        return Report(
            clients=len(self.clients),
            connected_before=connected_before,
            reconnected=len(self._reconnector.back_after),
            time_to=self._reconnector.time_to(),
            refusals=sum(refusals),
            refused_clients=sum(1 for r in refusals if r),
            max_refusals_per_client=max(refusals, default=0),
            retried_early=sum(c.retried_early for c in self.clients),
            overloaded=sum(c.errors.count("http_503") for c in self.clients),
            connect_failures=self._reconnector.connect_failures,
            published_org=len(self.org_ids),
            published_user=sum(len(ids) for ids in self.user_ids.values()),
            lost=sum(losses),
            clients_with_loss=sum(1 for n in losses if n),
            duplicates=sum(c.duplicates for c in self.clients),
            not_recovered=sum(1 for c in self.clients if not all(c.recovered.values())),
            retry_after_s={
                "min": hints[0] if hints else None,
                "max": hints[-1] if hints else None,
            },
        )


async def settle(
    missing: Callable[[], int], received: Callable[[], int], end: float, idle_s: float = 3.0
) -> None:
    """Until nothing is ``missing``, nothing more was ``received`` for ``idle_s``, or ``end``.

    What is still on its way after a storm arrives; a count that stopped
    moving means the rest is lost, not late.
    """
    last, since = -1, time.monotonic()
    while time.monotonic() < end and missing() > 0:
        total = received()
        if total != last:
            last, since = total, time.monotonic()
        elif time.monotonic() - since > idle_s:
            return
        await asyncio.sleep(0.1)


def _envelope(event_type: str, org: str, n: int, **data: Any) -> dict[str, Any]:
    return {
        "event_id": f"storm-{n}-{time.monotonic_ns()}",
        "event_type": event_type,
        "organization_id": org,
        "occurred_at": "2026-11-25T18:00:00.000Z",
        "data": data,
    }
