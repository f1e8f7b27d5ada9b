"""The fleet snapshot read from Redis (the consumer keeps it; see rooms/snapshots.py).

The :class:`~fleetcast.gateway.rooms.snapshots.SnapshotSource` seam's Redis side.
"""

from __future__ import annotations

from typing import Any

from fleetcast.gateway.rooms.snapshots import RawSnapshot, _text
from fleetcast.protocol import keys


class RedisSnapshotSource:
    """One MULTI per read: TIME, ZRANGE last_seen WITHSCORES, HGETALL positions and statuses."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def fetch(self, org: str) -> RawSnapshot:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.time()
            pipe.zrange(keys.fleet_last_seen(org), 0, -1, withscores=True)
            pipe.hgetall(keys.fleet_positions(org))
            pipe.hgetall(keys.fleet_statuses(org))
            (seconds, micros), seen, positions, statuses = await pipe.execute()
        return RawSnapshot(
            now_ms=int(seconds) * 1000 + int(micros) // 1000,
            last_seen=[(_text(asset), float(score)) for asset, score in seen],
            positions={_text(k): v for k, v in positions.items()},
            statuses={_text(k): v for k, v in statuses.items()},
        )
