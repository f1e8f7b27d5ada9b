"""History reads from Redis: the room streams the consumer XADDs to, read with XRANGE.

The :class:`~fleetcast.gateway.rooms.history.StreamReader` seam's Redis side.
"""

from __future__ import annotations

from typing import Any


class RedisStreamReader:
    """StreamReader over redis-py's asyncio client."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def first_and_after(
        self, stream: str, since: str, count: int
    ) -> tuple[list[Any], list[Any]]:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.xrange(stream, "-", "+", count=1)
            pipe.xrange(stream, f"({since}", "+", count=count)
            first, after = await pipe.execute()
        return first, after
