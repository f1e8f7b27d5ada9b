"""Helpers of the fleet, priority and storm tests: events written as the consumer writes them.

:class:`ConsumerPath` runs the consumer's own publish script (``fleetcast.consumer.publishing``)
on a real Redis: history streams, the fleet snapshot hashes and one wire message
per org, exactly what a gateway reads in production, without Kafka in between.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
import redis.asyncio as aioredis

from fleetcast.consumer import processing, publishing
from fleetcast.protocol import routing

ROUTER = processing.Router(routing.RoutingTable.default())
_ids = itertools.count(1)


@dataclass(frozen=True)
class Record:
    """What processing.prepare needs of a Kafka record."""

    value: bytes
    topic: str = "fleet.assets"
    partition: int = 0
    offset: int = 0
    key: bytes | None = None


def envelope(
    event_type: str, org: str, occurred_at: str | None = None, **data: Any
) -> dict[str, Any]:
    return {
        "event_id": f"ev-{next(_ids)}",
        "event_type": event_type,
        "organization_id": org,
        "occurred_at": occurred_at or "2026-11-25T18:00:00.000Z",
        "data": data,
    }


def position(org: str, asset: str, seq: int, **extra: Any) -> dict[str, Any]:
    """A position whose ``seq`` also orders its ``occurred_at`` (one second per step)."""
    minute, second = divmod(seq, 60)
    at = f"2026-11-25T18:{minute % 60:02d}:{second:02d}.000Z"
    return envelope(
        "asset_position_updated",
        org,
        at,
        asset_id=asset,
        lat=45.5 + seq * 1e-4,
        lon=-73.6,
        seq=seq,
        **extra,
    )


def status(org: str, asset: str, value: str) -> dict[str, Any]:
    return envelope("asset_status_changed", org, asset_id=asset, status=value)


def alert(org: str, n: int, **extra: Any) -> dict[str, Any]:
    return envelope("alert_created", org, alert_id=f"al-{n}", n=n, severity="critical", **extra)


class ConsumerPath:
    """The consumer's Redis side: ``publish`` writes a batch as the consumer does."""

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self.publisher = publishing.RedisPublisher(redis)
        self._offsets = itertools.count()  # one partition's, as Kafka would number them

    async def publish(self, docs: Iterable[Mapping[str, Any]]) -> int:
        records = [Record(orjson.dumps(doc), offset=next(self._offsets)) for doc in docs]
        batch = processing.prepare(processing.group(records), ROUTER)
        assert not batch.dead, batch.dead
        outcome = await self.publisher.publish_events(batch.routed)
        return outcome.published


def latest_by_asset(docs: Sequence[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """The last position data of each asset among ``docs`` (what a map should end up showing)."""
    latest: dict[str, Mapping[str, Any]] = {}
    for doc in docs:
        if doc["event_type"] == "asset_position_updated":
            latest[doc["data"]["asset_id"]] = doc["data"]
    return latest


def fleet_view(events: Sequence[tuple[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """A map rebuilt from what a client received: snapshot, then batches, in order."""
    view: dict[str, Mapping[str, Any]] = {}
    for name, payload in events:
        if name in ("fleet_snapshot", "asset_positions"):
            for entry in payload["data"]["positions"]:
                view[entry["asset_id"]] = entry
    return view
