"""A Redis Cluster changing under a stream of events: a master killed, a busy slot migrated.

Kafka -> consumer -> a private 3-master, 3-replica cluster -> gateway -> clients,
all real. Events flow all along; mid-stream a master dies (its replica takes
over) or the slot of the busiest org moves to another shard. Every client
must receive every event of its org exactly once, in order: the consumer's
fences and retries keep the cluster's copy whole, the gateway's shard
listeners follow the topology and recover their gaps from history.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from redis.crc import key_slot

from fleetcast.devtools.redis import ClusterNodeServer, RedisClusterServer
from fleetcast.gateway.redis.shards import Shards
from fleetcast.protocol import keys
from tests.harness import redis as redis_harness
from tests.harness.gateway import (
    Client,
    RunningGateway,
    gateway_settings,
    make_token,
    start_gateway,
    wait_until,
)
from tests.harness.kafka import KafkaTopics, consumer_settings, produce_events, running_consumer

pytestmark = pytest.mark.integration

ORGS = ("org-a", "org-b", "org-c")
#: Events per org and tick, and the tick (seconds): ~300 events/s in all.
PER_TICK, TICK_S = 5, 0.05
_serial = itertools.count()


def alert(org: str) -> dict[str, Any]:
    """A new alert (its id is the event's): each one also opens an entry of the org's
    alerts table, so the state tables move with the slot too."""
    event_id = f"{org}-{next(_serial):06d}"
    return {
        "event_id": event_id,
        "event_type": "alert_created",
        "organization_id": org,
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": {"alert_id": event_id},
    }


class Flow:
    """Produces alerts for every org until stopped; remembers what it sent, per org."""

    def __init__(self, producer: AIOKafkaProducer, topics: KafkaTopics) -> None:
        self._producer, self._topics = producer, topics
        self.sent: dict[str, list[str]] = {org: [] for org in ORGS}
        self._stop = asyncio.Event()

    async def run(self) -> None:
        while not self._stop.is_set():
            batch = [alert(org) for org in ORGS for _ in range(PER_TICK)]
            await produce_events(self._producer, self._topics, batch)
            for event in batch:
                self.sent[str(event["organization_id"])].append(str(event["event_id"]))
            await asyncio.sleep(TICK_S)

    def stop(self) -> None:
        self._stop.set()

    @property
    def total(self) -> int:
        return sum(len(ids) for ids in self.sent.values())


@contextlib.asynccontextmanager
async def stack(
    cluster: RedisClusterServer,
    topics: KafkaTopics,
    producer: AIOKafkaProducer,
    clients: Callable[..., Client],
) -> AsyncIterator[tuple[RunningGateway, dict[str, Client], Flow]]:
    """Consumer and gateway on ``cluster``, one client per org, a flow running."""
    settings = consumer_settings(topics, cluster.url)
    async with running_consumer(settings):
        running = await start_gateway(gateway_settings(cluster.url, canary_interval_s=0.5))
        flow = Flow(producer, topics)
        task: asyncio.Task[None] | None = None
        try:
            connected = {}
            for org in ORGS:
                client = clients(running.url)
                assert await client.connect(make_token(f"u-{org}", org))
                await client.wait_for("session")
                connected[org] = client
            task = asyncio.create_task(flow.run())
            yield running, connected, flow
        finally:
            flow.stop()
            if task is not None:
                await task
            await running.stop()


def delivered(client: Client) -> list[str]:
    return [e["event_id"] for e in client.received("alert_created")]


async def settle(flow: Flow, connected: dict[str, Client], within: float = 60.0) -> None:
    """Stop the flow; wait until every client has as many events as were sent to its org."""
    flow.stop()
    await asyncio.sleep(TICK_S * 2)

    def complete() -> bool:
        return all(len(delivered(connected[org])) >= len(flow.sent[org]) for org in ORGS)

    await wait_until(complete, within, "every event delivered")
    await asyncio.sleep(1.0)  # anything shown twice would show up by now


def check(flow: Flow, connected: dict[str, Client]) -> None:
    """0 lost, 0 duplicates, in order: each client saw exactly its org's events."""
    for org in ORGS:
        assert delivered(connected[org]) == flow.sent[org], org


async def delivered_after(client: Client, count: int, within: float) -> float:
    """Seconds until ``client`` has more than ``count`` events."""
    started = time.monotonic()
    await wait_until(lambda: len(delivered(client)) > count, within, "delivery resumed")
    return time.monotonic() - started


async def test_a_master_killed_mid_stream_loses_and_duplicates_nothing(
    own_cluster: RedisClusterServer,
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    clients: Callable[..., Client],
) -> None:
    async with stack(own_cluster, kafka_topics, kafka_producer, clients) as (
        running,
        connected,
        flow,
    ):
        victim_org = ORGS[0]
        await connected[victim_org].wait_for("alert_created", 50, 30)
        victim = own_cluster.master_of(key_slot(keys.tag(victim_org).encode()))
        before = len(delivered(connected[victim_org]))
        victim.kill()
        resumed = asyncio.create_task(delivered_after(connected[victim_org], before + 20, 30))
        await asyncio.to_thread(own_cluster.wait_ready)
        failover_s = await resumed
        await asyncio.sleep(1.0)  # events flow on the promoted replica
        await settle(flow, connected)
        check(flow, connected)
        shards = running.gateway.listener
        assert isinstance(shards, Shards)
        assert victim.port is not None
        assert f"127.0.0.1:{victim.port}" not in shards.shards  # its shard was retired
        assert shards.moves >= 1
        print(  # the figures docs/capacity.md quotes (pytest -s shows them)
            f"\nfailover: {flow.total} events, delivery resumed after {failover_s:.1f} s, "
            "0 lost, 0 duplicates"
        )


async def test_a_busy_orgs_slot_migrated_mid_stream_loses_and_duplicates_nothing(
    own_cluster: RedisClusterServer,
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    clients: Callable[..., Client],
) -> None:
    async with stack(own_cluster, kafka_topics, kafka_producer, clients) as (
        running,
        connected,
        flow,
    ):
        busy = ORGS[1]
        slot = key_slot(keys.tag(busy).encode())
        await connected[busy].wait_for("alert_created", 50, 30)
        source = own_cluster.master_of(slot)
        target = next(node for node in masters(own_cluster) if node is not source)
        await asyncio.to_thread(own_cluster.migrate_slot, slot, target)
        assert own_cluster.master_of(slot) is target
        shards = running.gateway.listener
        assert isinstance(shards, Shards)
        await wait_until(
            lambda: busy in shards.shards.get(f"127.0.0.1:{target.port}", []), 10, "org moved"
        )
        await asyncio.sleep(1.0)  # events flow on the new shard
        await settle(flow, connected)
        check(flow, connected)
        await check_alerts_table(own_cluster, flow)
        print(f"\nmigration: {flow.total} events, 0 lost, 0 duplicates")


async def check_alerts_table(cluster: RedisClusterServer, flow: Flow) -> None:
    """Each org's alerts table holds exactly the alerts sent (state applied once each)."""
    redis: Any = redis_harness.client(cluster.url)
    try:
        for org in ORGS:
            active = await redis.hkeys(keys.state_table(org, "alerts"))
            assert sorted(a.decode() for a in active) == sorted(flow.sent[org]), org
    finally:
        await redis.aclose()


def masters(cluster: RedisClusterServer) -> list[ClusterNodeServer]:
    return [node for node in cluster.nodes if node.running and is_master(cluster, node)]


def is_master(cluster: RedisClusterServer, node: ClusterNodeServer) -> bool:
    return cluster.command(node, "ROLE").startswith("master")
