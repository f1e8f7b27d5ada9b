"""The publish script against a real Redis (no Kafka): wire bytes, fences, TTLs, snapshot bounds."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
import pytest
from redis.asyncio import RedisCluster
from redis.exceptions import ResponseError

from fleetcast.consumer import encoding, processing, publishing, sending
from fleetcast.protocol import keys, routing, wire
from tests.harness import redis as redis_harness

pytestmark = pytest.mark.integration

ROUTER = processing.Router(routing.RoutingTable.default())
_offsets = itertools.count()


@dataclass(frozen=True)
class Rec:
    value: bytes
    offset: int
    topic: str = "t"
    partition: int = 0
    key: bytes | None = None


def routed(
    event_type: str, data: dict[str, Any], event_id: str, org: str = "org-1", offset: int = -1
) -> Any:
    """One routed event at ``offset`` of partition t:0 (by default the next offset)."""
    doc = {
        "event_id": event_id,
        "event_type": event_type,
        "organization_id": org,
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": data,
    }
    record = Rec(orjson.dumps(doc), next(_offsets) if offset < 0 else offset)
    (item,) = processing.prepare(processing.group([record]), ROUTER).routed
    return item


@pytest.fixture
async def redis(any_redis_url: str) -> AsyncIterator[Any]:
    """One Redis or a cluster: every test here runs on both."""
    client = redis_harness.client(any_redis_url)
    try:
        yield client
    finally:
        await client.aclose()


def publisher_of(redis: Any, *args: Any, **kwargs: Any) -> publishing.RedisPublisher:
    """The consumer's publisher on ``redis`` (its cluster sender on a cluster)."""
    if isinstance(redis, RedisCluster):
        return publishing.RedisPublisher(sending.ClusterSender(redis, 5.0), *args, **kwargs)
    return publishing.RedisPublisher(redis, *args, **kwargs)


async def publish_and_listen(
    redis: Any, publisher: publishing.RedisPublisher, items: list[Any]
) -> list[bytes]:
    async with redis_harness.OrgListener(redis, "org-1") as listener:
        await publisher.publish_events(items)
        return await listener.drain()


async def test_the_message_is_exactly_what_wire_encode_makes(redis: Any) -> None:
    items = [
        routed("incident_created", {"incident_id": "i-1", "channel_id": "c-1"}, "e-1"),
        routed("asset_position_updated", {"asset_id": "u-1", "lat": 1.25}, "e-2"),
        routed("alert_created", {"note": 'quote " and \\u2603 ☃'}, "e-3"),
    ]
    (raw,) = await publish_and_listen(redis, publisher_of(redis), items)
    message = wire.decode_message(raw)
    assert message.org == "org-1"
    assert message.seq == 1
    assert message.time_ms is not None
    batch = message.events
    expected = [
        wire.RoutedEvent(item.rooms, dict(got.offsets), orjson.loads(item.envelope_json))
        for item, got in zip(items, batch, strict=True)
    ]
    assert raw == wire.encode("org-1", expected, seq=1, time_ms=message.time_ms)
    assert list(batch[1].offsets) == ["asset:u-1:org:org-1"]  # no history for the fleet room


async def test_every_message_of_an_org_is_numbered_in_order(redis: Any) -> None:
    """A gateway sees a missing number as a gap: the numbers run on across calls and messages."""
    publisher = publisher_of(redis, encoding.Limits(events_per_message=2), timeout_s=5.0)
    first = [routed("alert_created", {}, f"e-{n}", offset=n) for n in range(3)]
    second = [routed("alert_created", {}, f"e-{n}", offset=n) for n in range(3, 4)]
    messages = await publish_and_listen(redis, publisher, first)
    messages += await publish_and_listen(redis, publisher, second)
    assert [wire.decode_message(m).seq for m in messages] == [1, 2, 3]
    assert int(await redis.get(keys.org_sequence("org-1"))) == 3
    assert await redis.ttl(keys.org_sequence("org-1")) == -1  # never expires


async def test_a_redelivered_batch_is_neither_stored_nor_published_again(redis: Any) -> None:
    publisher = publisher_of(redis)
    first = [routed("alert_created", {}, f"e-{n}", offset=100 + n) for n in range(3)]
    assert await publisher.publish_events(first) == publishing.Outcome(3, 0)
    assert await redis.hget(publisher.fence_key("org-1"), "t:0") == b"102"
    again = [*first[1:], routed("alert_created", {}, "e-3", offset=103)]  # Kafka rewound
    messages = await publish_and_listen(redis, publisher, again)
    assert [[e.event["event_id"] for e in wire.decode(m)[1]] for m in messages] == [["e-3"]]
    assert await redis.xlen(keys.history_stream("org:org-1")) == 4
    assert await redis.hget(publisher.fence_key("org-1"), "t:0") == b"103"
    assert 0 < await redis.ttl(publisher.fence_key("org-1")) <= keys.FENCE_TTL_S


async def test_the_outcome_counts_what_the_fence_dropped(redis: Any) -> None:
    publisher = publisher_of(redis)
    batch = [routed("alert_created", {}, f"e-{n}", offset=200 + n) for n in range(4)]
    assert await publisher.publish_events(batch[:2]) == publishing.Outcome(2, 0)
    assert await publisher.publish_events(batch) == publishing.Outcome(2, 2)
    assert await publisher.publish_events(batch) == publishing.Outcome(0, 4)


async def test_fences_belong_to_one_kafka_cluster(redis: Any) -> None:
    item = routed("alert_created", {}, "e-c", offset=300)
    ours = publisher_of(redis, cluster_id="cluster-a")
    fresh = publisher_of(redis, cluster_id="cluster-b")  # e.g. a new test broker
    assert await ours.publish_events([item]) == publishing.Outcome(1, 0)
    assert await fresh.publish_events([item]) == publishing.Outcome(1, 0)


async def test_a_fence_past_the_end_of_its_partition_is_dropped(redis: Any) -> None:
    publisher = publisher_of(redis, cluster_id="recreated")
    await redis.hset(publisher.fence_key("org-1"), mapping={"t:0": 500, "t:1": 20, "u:0": 7})
    await redis.sadd(keys.fenced_orgs("recreated"), "org-1")  # as its first publish did
    stale = await publisher.drop_stale_fences({("t", 0): 30, ("t", 1): 30, ("u", 0): 7})
    assert sorted(stale) == ["org-1/t:0", "org-1/u:0"]  # at or past the end: an older topic's
    assert await redis.hgetall(publisher.fence_key("org-1")) == {b"t:1": b"20"}


async def test_history_streams_outlive_their_last_event_by_the_ttl(redis: Any) -> None:
    publisher = publisher_of(redis, encoding.Limits(history_ttl_s=1000))
    await publisher.publish_events([routed("incident_updated", {"incident_id": "ttl"}, "e-t")])
    ttl = await redis.ttl(keys.history_stream("incident:ttl:org:org-1"))
    assert 1000 <= ttl <= 1100


async def test_a_user_rooms_history_outlives_its_last_event_by_the_inbox_ttl(redis: Any) -> None:
    limits = encoding.Limits(history_ttl_s=1000, inbox_ttl_s=50_000)
    publisher = publishing.RedisPublisher(redis, limits)
    data = {"task_id": "t", "user_id": "inbox-1", "incident_id": "inbox-i"}
    await publisher.publish_events([routed("task_assigned", data, "e-inbox")])
    assert 50_000 <= await redis.ttl(keys.history_stream("user:inbox-1:org:org-1")) <= 50_100
    assert 1000 <= await redis.ttl(keys.history_stream("incident:inbox-i:org:org-1")) <= 1100


async def test_a_flushed_script_cache_is_reloaded(redis: Any) -> None:
    publisher = publisher_of(redis)
    await redis.script_flush()
    item = routed("alert_created", {}, "e-flush")
    assert await publisher.publish_events([item]) == publishing.Outcome(1, 0)


async def test_stale_assets_leave_the_snapshot(redis: Any) -> None:
    publisher = publisher_of(redis, encoding.Limits(fleet_asset_ttl_s=1))
    await publisher.publish_events([routed("asset_position_updated", {"asset_id": "old"}, "e-1")])
    await publisher.publish_events([routed("asset_status_changed", {"asset_id": "old"}, "e-2")])
    await asyncio.sleep(1.2)
    await publisher.publish_events([routed("asset_position_updated", {"asset_id": "new"}, "e-3")])
    assert await redis.hkeys(keys.fleet_positions("org-1")) == [b"new"]
    assert await redis.hkeys(keys.fleet_statuses("org-1")) == []
    assert await redis.zrange(keys.fleet_last_seen("org-1"), 0, -1) == [b"new"]


async def test_the_snapshot_keeps_at_most_the_newest_assets(redis: Any) -> None:
    publisher = publisher_of(redis, encoding.Limits(fleet_max_assets=3))
    for n in range(5):
        await publisher.publish_events(
            [routed("asset_position_updated", {"asset_id": f"u-{n}"}, f"e-{n}")]
        )
        await asyncio.sleep(0.002)  # distinct last-seen times
    assert sorted(await redis.hkeys(keys.fleet_positions("org-1"))) == [b"u-2", b"u-3", b"u-4"]
    assert await redis.zcard(keys.fleet_last_seen("org-1")) == 3


async def test_large_batches_are_split_into_bounded_messages(redis: Any) -> None:
    publisher = publisher_of(redis, encoding.Limits(events_per_message=100))
    items = [routed("alert_created", {}, f"e-{n}") for n in range(250)]
    messages = await publish_and_listen(redis, publisher, items)
    sizes = [len(wire.decode(raw)[1]) for raw in messages]
    assert sizes == [100, 100, 50]


async def test_a_batch_that_fails_midway_moves_no_fence(redis: Any) -> None:
    publisher = publisher_of(redis, cluster_id="midway")
    first = routed("incident_updated", {"incident_id": "ok"}, "e-first")
    second = routed("incident_updated", {"incident_id": "bad"}, "e-second")
    await redis.set(keys.history_stream("incident:bad:org:org-1"), "not a stream")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await publisher.publish_events([first, second])
    assert not await redis.exists(publisher.fence_key("org-1"))  # the retry will publish both
    await redis.delete(keys.history_stream("incident:bad:org:org-1"))
    assert await publisher.publish_events([first, second]) == publishing.Outcome(2, 0)
    assert await redis.ping()  # an error reply leaves the connection usable


async def test_a_batch_failing_for_one_org_is_retried_without_duplicates(redis: Any) -> None:
    """One call per org (one per shard on a cluster): the orgs that succeeded are fenced."""
    publisher = publisher_of(redis, cluster_id="partial")
    orgs = [f"org-{n}" for n in range(1, 7)]
    batch = [
        routed("incident_updated", {"incident_id": "i"}, f"e-{org}", org=org, offset=n)
        for n, org in enumerate(orgs)
    ]
    bad = keys.history_stream("incident:i:org:org-4")
    await redis.set(bad, "not a stream")
    with pytest.raises(ResponseError, match="WRONGTYPE"):
        await publisher.publish_events(batch)
    await redis.delete(bad)
    assert await publisher.publish_events(batch) == publishing.Outcome(1, 5)
    for org in orgs:
        stream = keys.history_stream(f"incident:i:org:{org}")
        assert await redis.xlen(stream) == 1, org
