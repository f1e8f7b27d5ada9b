"""The publish script keeps each org's state (open incidents, active alerts, users' tasks).

Every test runs on one Redis and on a Redis Cluster (``any_redis_url``): on a
cluster a script may touch only its slot's keys, so the tables are the org's
({org} tag) and declared in the call's KEYS.
"""

from __future__ import annotations

import asyncio
import itertools
import random
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from redis.asyncio import Redis, RedisCluster
from redis.crc import key_slot
from redis.exceptions import TryAgainError

from fleetcast.consumer import processing, publishing, sending, state
from fleetcast.devtools.redis import RedisClusterServer
from fleetcast.protocol import keys, routing
from tests.harness import redis as redis_harness

pytestmark = pytest.mark.integration

ROUTER = processing.Router(routing.RoutingTable.default())
RULES = state.Rules()
ORG = "org-state"
_offsets = itertools.count()


@dataclass(frozen=True)
class Rec:
    value: bytes
    offset: int
    topic: str = "t"
    partition: int = 0
    key: bytes | None = None


def routed(event_type: str, data: dict[str, Any], *, slow: bool = False) -> Any:
    """One routed event, with its state changes (``slow``: through the strict path)."""
    offset = next(_offsets)
    doc = {
        "event_id": f"e-{offset}",
        "event_type": event_type,
        "organization_id": ORG,
        "occurred_at": "2026-12-07T08:00:00Z",
        "data": data,
    }
    if slow:
        doc["trace"] = "x"  # a sixth field: not the fast path's five-field shape
    record = Rec(orjson.dumps(doc), offset)
    (item,) = processing.prepare(processing.group([record]), ROUTER, state_rules=RULES).routed
    return item


@pytest.fixture
async def redis(any_redis_url: str) -> AsyncIterator[Any]:
    """A client of one Redis or of the cluster (emptied by the URL fixture)."""
    client = redis_harness.client(any_redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def table(redis: Any, key: str) -> dict[str, dict[str, Any]]:
    return {k.decode(): orjson.loads(v) for k, v in (await redis.hgetall(key)).items()}


async def test_after_50_incident_events_exactly_the_open_ones_are_there(redis: Any) -> None:
    publisher = redis_harness.publisher(redis, cluster_id="state-50")
    shuffle = random.Random(7)
    items, open_ = [], set()
    for n in range(50):
        incident = f"i{shuffle.randrange(12)}"
        if incident in open_ and shuffle.random() < 0.4:
            items.append(
                routed("incident_status_changed", {"incident_id": incident, "status": "closed"})
            )
            open_.discard(incident)
        else:
            items.append(routed("incident_updated", {"incident_id": incident, "note": f"n{n}"}))
            open_.add(incident)
    for start in range(0, 50, 7):  # batches of several events each, as the consumer sends
        await publisher.publish_events(items[start : start + 7])
    incidents = await table(redis, keys.state_table(ORG, "incidents"))
    assert set(incidents) == open_
    assert 0 < await redis.ttl(keys.state_table(ORG, "incidents")) <= keys.STATE_TTL_S


async def test_a_record_merges_every_event_of_its_item(redis: Any) -> None:
    publisher = redis_harness.publisher(redis, cluster_id="state-merge")
    await publisher.publish_events(
        [
            routed(
                "incident_created", {"incident_id": "i1", "status": "dispatched", "priority": 1}
            ),
            routed("incident_updated", {"incident_id": "i1", "units": ["u-7"]}),
        ]
    )
    await publisher.publish_events(
        [routed("incident_status_changed", {"incident_id": "i1", "status": "on_scene"}, slow=True)]
    )
    (record,) = (await table(redis, keys.state_table(ORG, "incidents"))).values()
    assert record == {"incident_id": "i1", "status": "on_scene", "priority": 1, "units": ["u-7"]}


async def test_an_acknowledged_alert_is_no_longer_active(redis: Any) -> None:
    publisher = redis_harness.publisher(redis, cluster_id="state-alerts")
    await publisher.publish_events(
        [
            routed("alert_created", {"alert_id": "a1", "severity": "critical"}),
            routed("alert_created", {"alert_id": "a2", "severity": "minor"}),
            routed("alert_acknowledged", {"alert_id": "a1", "user_id": "u1"}),
        ]
    )
    assert set(await table(redis, keys.state_table(ORG, "alerts"))) == {"a2"}


async def test_a_task_follows_its_owner_and_leaves_when_completed(redis: Any) -> None:
    publisher = redis_harness.publisher(redis, cluster_id="state-tasks")
    first, second = keys.user_tasks(ORG, "u1"), keys.user_tasks(ORG, "u2")
    await publisher.publish_events(
        [
            routed("task_assigned", {"task_id": "t1", "user_id": "u1", "title": "check gate"}),
            routed(
                "task_updated", {"task_id": "t1", "incident_id": "i1", "progress": 50}
            ),  # whose: the record's
        ]
    )
    assert await table(redis, first) == {
        "t1": {
            "task_id": "t1",
            "user_id": "u1",
            "title": "check gate",
            "incident_id": "i1",
            "progress": 50,
        }
    }
    await publisher.publish_events(
        [routed("task_assigned", {"task_id": "t1", "user_id": "u2", "previous_user_id": "u1"})]
    )
    assert await table(redis, first) == {}
    moved = await table(redis, second)
    assert moved["t1"]["title"] == "check gate"
    assert moved["t1"]["user_id"] == "u2"
    assert await redis.hget(keys.task_owners(ORG), "t1") == b"u2"
    await publisher.publish_events([routed("task_completed", {"task_id": "t1", "user_id": "u2"})])
    assert await table(redis, second) == {}
    assert await redis.hget(keys.task_owners(ORG), "t1") is None


async def test_a_redelivered_batch_changes_no_state_twice(redis: Any) -> None:
    publisher = redis_harness.publisher(redis, cluster_id="state-fence")
    batch = [
        routed("alert_created", {"alert_id": "a9"}),
        routed("alert_acknowledged", {"alert_id": "a9"}),
    ]
    await publisher.publish_events(batch)
    await publisher.publish_events([routed("alert_created", {"alert_id": "a9", "again": True})])
    assert await publisher.publish_events(batch) == publishing.Outcome(0, 2)  # fenced
    assert (await table(redis, keys.state_table(ORG, "alerts")))["a9"]["again"] is True


class Recording:
    """The consumer's own sender, keeping every packed call it sends (to read its KEYS)."""

    def __init__(self, sender: sending.Sender) -> None:
        self._sender, self.sent = sender, list[bytes]()
        self.publish_command, self.client = sender.publish_command, sender.client

    async def send(self, calls: Sequence[tuple[str, bytes]], script: str) -> list[Any]:
        self.sent += [packed for _, packed in calls]
        return await self._sender.send(calls, script)

    async def aclose(self) -> None:
        await self._sender.aclose()

    def declared(self) -> set[str]:
        """The KEYS of the last call sent (a small RESP reader)."""
        words, packed, cursor = [], self.sent[-1], self.sent[-1].index(b"\r\n") + 2
        while cursor < len(packed):
            end = packed.index(b"\r\n", cursor)
            size = int(packed[cursor + 1 : end])
            words.append(packed[end + 2 : end + 2 + size].decode())
            cursor = end + 4 + size
        return set(words[3 : 3 + int(words[2])])


async def written_keys(node: Any, write: Any) -> set[str]:
    """The org's keys Redis notifies as written while ``write`` runs (keyspace events)."""
    marker = f"fleetcast:{keys.tag(ORG)}:test-marker"
    async with node.pubsub() as pubsub:
        await pubsub.psubscribe("__keyspace@0__:*")
        await write
        await node.set(marker, 1)
        found: set[str] = set()
        async with asyncio.timeout(5):
            while marker not in found:
                message = await pubsub.get_message(timeout=1)
                if message and message["type"] == "pmessage":
                    found.add(message["channel"].decode().removeprefix("__keyspace@0__:"))
    return {key for key in found if keys.tag(ORG) in key and key != marker}


async def test_a_call_writes_only_keys_it_declares(redis: Any) -> None:
    """Every key the script writes is in its call's KEYS, task owners on record included.

    On a cluster Redis routes a call, and holds it back while its slot
    migrates, by its KEYS alone (docs/cluster.md). Reassignments, and updates or completions
    naming another user than the owner on record, touch a table the event does
    not name: the script asks for it before writing anything.
    """
    sender = Recording(sending.sender_for(redis, 5.0))
    publisher = publishing.RedisPublisher(sender, cluster_id="state-declared")
    node = await node_of(redis, keys.task_owners(ORG))
    await node.config_set("notify-keyspace-events", "KA")
    batches = [
        [
            routed("task_assigned", {"task_id": "t1", "user_id": "u1", "title": "gate"}),
            routed("task_assigned", {"task_id": "t2", "user_id": "u1"}),
            routed("incident_created", {"incident_id": "i1"}),
        ],
        [routed("task_assigned", {"task_id": "t1", "user_id": "u2"})],  # from u1: not named
        [routed("task_updated", {"task_id": "t2", "incident_id": "i1", "progress": 50})],
        [routed("task_completed", {"task_id": "t1", "user_id": "u2"})],
        [routed("task_completed", {"task_id": "t2", "user_id": "u9"})],  # u1's on record
    ]
    try:
        for batch in batches:
            written = await written_keys(node, publisher.publish_events(batch))
            assert written, "no keyspace event: the check would prove nothing"
            assert written <= sender.declared(), written - sender.declared()
        assert await table(redis, keys.user_tasks(ORG, "u1")) == {}
        assert await table(redis, keys.user_tasks(ORG, "u2")) == {}
        assert len(sender.sent) == len(batches) + 3  # three asked for an owner's table
    finally:
        await node.config_set("notify-keyspace-events", "")
        if node is not redis:
            await node.aclose()


async def node_of(redis: Any, key: str) -> Any:
    """A plain client of the server holding ``key`` (keyspace events are per node)."""
    if not isinstance(redis, RedisCluster):
        return redis
    await redis.initialize()
    node = redis.get_node_from_key(key)
    assert node is not None
    return Redis(host=node.host, port=int(node.port))


async def test_a_task_reassigned_while_its_slot_migrates_is_published_once(
    own_cluster: RedisClusterServer,
) -> None:
    """A reassignment whose previous owner's table moved first: applied once, after.

    While a slot migrates, Redis runs no call of the org on either node: each
    call declares the org's channel, never a key, so it counts as missing; the
    source answers ASK and the target TRYAGAIN. The call fails having written
    nothing and, sent again once the slot has moved, is applied once, the
    record moving from the old owner's table to the new one's.
    """
    redis: Any = redis_harness.client(own_cluster.url)
    publisher = redis_harness.publisher(redis, cluster_id="state-migrate")
    setup = [
        routed("asset_position_updated", {"asset_id": "a1"}),
        routed("asset_status_changed", {"asset_id": "a1", "status": "busy"}),
        routed("task_assigned", {"task_id": "t1", "user_id": "u1", "title": "gate"}),
        routed("task_assigned", {"task_id": "t2", "user_id": "u2"}),
    ]
    try:
        await publisher.publish_events(setup)
        inbox, sequence = keys.history_stream(f"user:u2:org:{ORG}"), keys.org_sequence(ORG)
        before = (await redis.xlen(inbox), await redis.get(sequence))
        slot = key_slot(keys.tag(ORG).encode())
        source = own_cluster.master_of(slot)
        target = next(n for n in masters(own_cluster) if n is not source)
        await asyncio.to_thread(
            begin_migration, own_cluster, slot, target, keys.user_tasks(ORG, "u1")
        )
        reassign = publisher.encode([routed("task_assigned", {"task_id": "t1", "user_id": "u2"})])
        with pytest.raises(TryAgainError):  # the call waits for the slot's other keys
            await publisher.publish(reassign)
        await asyncio.to_thread(own_cluster.migrate_slot, slot, target)
        assert await publisher.publish(reassign) == publishing.Outcome(1, 0)
        assert (await redis.xlen(inbox), await redis.get(sequence)) == (
            before[0] + 1,
            str(int(before[1]) + 1).encode(),
        )
        assert set(await table(redis, keys.user_tasks(ORG, "u2"))) == {"t1", "t2"}
        assert (await table(redis, keys.user_tasks(ORG, "u2")))["t1"]["title"] == "gate"
        assert await table(redis, keys.user_tasks(ORG, "u1")) == {}
    finally:
        await redis.aclose()


def begin_migration(cluster: RedisClusterServer, slot: int, target: Any, key: str) -> None:
    """Mark ``slot`` migrating to ``target`` and move only ``key`` there."""
    source = cluster.master_of(slot)
    cluster.command(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", cluster.node_id(source))
    cluster.command(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", cluster.node_id(target))
    assert target.port is not None
    moved = cluster.command(source, "MIGRATE", "127.0.0.1", str(target.port), key, "0", "5000")
    assert moved.strip() == "OK", moved


def masters(cluster: RedisClusterServer) -> list[Any]:
    return [
        n for n in cluster.nodes if n.running and cluster.command(n, "ROLE").startswith("master")
    ]
