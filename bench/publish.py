"""Publishing benchmark events into Redis as the consumer does.

One wire message (``fleetcast.protocol.wire``) per event on the org channel
(``fleetcast.protocol.keys.org_channel``): the worst case for a gateway, since
the consumer may batch. Paced publishing sends each event at its due time
(``start + i / rate``), catching up at once when late, so the offered rate
is what the report says; a burst sends everything in one pipeline.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence

import redis.asyncio as aioredis

from bench.events import BenchEvent, wire_message
from fleetcast.protocol import keys

#: Longest a paced run may overrun its schedule before it gives up (seconds).
OVERRUN_S = 30.0


async def pace(
    batch: Sequence[BenchEvent],
    rate_per_s: float,
    send: Callable[[Sequence[BenchEvent]], Awaitable[None]],
) -> int:
    """Hand ``batch`` to ``send`` at ``rate_per_s`` events per second, catching up when late.

    Bounded: gives up :data:`OVERRUN_S` after the schedule's end. Returns the count sent.
    """
    start = time.monotonic()
    deadline = start + len(batch) / rate_per_s + OVERRUN_S
    sent = 0
    while sent < len(batch) and time.monotonic() < deadline:
        due = min(len(batch), int((time.monotonic() - start) * rate_per_s) + 1)
        if due > sent:
            await send(batch[sent:due])
            sent = due
        await asyncio.sleep(max(0.0, start + sent / rate_per_s - time.monotonic()))
    return sent


class RedisPublisher:
    def __init__(self, url: str) -> None:
        self.client = aioredis.Redis.from_url(url)

    async def close(self) -> None:
        await self.client.aclose()

    async def paced(self, batch: Sequence[BenchEvent], rate_per_s: float) -> int:
        """Publish ``batch`` at ``rate_per_s`` events per second; returns the count sent."""
        return await pace(batch, rate_per_s, self._send)

    async def burst(self, batch: Sequence[BenchEvent]) -> int:
        await self._send(batch)
        return len(batch)

    async def _send(self, batch: Sequence[BenchEvent]) -> None:
        now = time.monotonic_ns()
        async with self.client.pipeline(transaction=False) as pipe:
            for event in batch:
                pipe.publish(keys.org_channel(event.org), wire_message(event.org, [event], now))
            await pipe.execute()
