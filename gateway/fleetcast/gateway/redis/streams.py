"""History and sequence reads from Redis: what recovery asks (rooms/history.py, recovery.py).

The room streams the consumer XADDs to are read with XINFO STREAM (first
entry, greatest id ever deleted) and XRANGE after an offset, every room of
one recovery in one MULTI (one org: one slot, so this holds on a cluster
too); the orgs' message counters with one MGET (per slot on a cluster).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from redis.exceptions import ResponseError

from fleetcast.protocol import keys


class RedisStreamReader:
    """StreamReader and SequenceReader over redis-py's asyncio client."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def ranges(
        self, requests: Sequence[tuple[str, str]], count: int
    ) -> list[tuple[Mapping[Any, Any] | None, list[Any]]]:
        if not requests:
            return []
        async with self._redis.pipeline(transaction=True) as pipe:
            for stream, since in requests:
                pipe.xinfo_stream(stream)
                pipe.xrange(stream, f"({since}", "+", count=count)
            replies = await pipe.execute(raise_on_error=False)
        results = []
        for info, entries in zip(replies[::2], replies[1::2], strict=True):
            if isinstance(entries, Exception):
                raise entries
            if isinstance(info, ResponseError):  # "no such key": the stream does not exist
                info = None
            elif isinstance(info, Exception):
                raise info
            results.append((info, entries))
        return results

    async def sequences(self, orgs: Sequence[str]) -> dict[str, int | None]:
        """Each org's message counter (None where it does not exist)."""
        if not orgs:
            return {}
        names = [keys.org_sequence(org) for org in orgs]
        if hasattr(self._redis, "mget_nonatomic"):  # a cluster: one MGET per slot
            values = await self._redis.mget_nonatomic(names)
        else:
            values = await self._redis.mget(names)
        return {org: int(v) if v is not None else None for org, v in zip(orgs, values, strict=True)}
