"""Publishing benchmark events the way each server's users publish.

fleetcast and the Node reference read Redis: one wire message
(``fleetcast.protocol.wire``) per event on the org channel
(``fleetcast.protocol.keys.org_channel``): the worst case for a gateway, since
the consumer may batch. Paced publishing sends each event at its due time
(``start + i / rate``), catching up at once when late, so the offered rate
is what the report says; a burst sends everything in one pipeline.

Centrifugo is published to through its server HTTP API, as its users do:
``/api/publish`` for one event (``/api/broadcast`` when it goes to several
rooms), ``/api/batch`` for several at once (a burst is one request). The
publication's data is the stamped envelope, the same bytes a fleetcast
client gets as the event's payload.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

import aiohttp
import orjson
import redis.asyncio as aioredis

from bench.events import BenchEvent, wire_message
from bench.loadgen import centrifugo_codec
from fleetcast.protocol import keys

#: Longest a paced run may overrun its schedule before it gives up (seconds).
OVERRUN_S = 30.0


async def pace(
    batch: Sequence[BenchEvent],
    rate_per_s: float,
    send: Callable[[Sequence[BenchEvent]], Awaitable[None]],
    until: Callable[[], bool] | None = None,
) -> int:
    """Hand ``batch`` to ``send`` at ``rate_per_s`` events per second, catching up when late.

    Bounded: gives up :data:`OVERRUN_S` after the schedule's end, or stops
    early once ``until()`` says so (a load that lasts as long as a storm).
    Returns the count sent.
    """
    start = time.monotonic()
    deadline = start + len(batch) / rate_per_s + OVERRUN_S
    sent = 0
    while sent < len(batch) and time.monotonic() < deadline and not (until and until()):
        due = min(len(batch), int((time.monotonic() - start) * rate_per_s) + 1)
        if due > sent:
            await send(batch[sent:due])
            sent = due
        await asyncio.sleep(max(0.0, start + sent / rate_per_s - time.monotonic()))
    return sent


class Publisher(Protocol):
    """What a scenario publishes through; one per server under test."""

    async def paced(self, batch: Sequence[BenchEvent], rate_per_s: float) -> int: ...

    async def burst(self, batch: Sequence[BenchEvent]) -> int: ...

    async def close(self) -> None: ...


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


def centrifugo_command(event: BenchEvent, now_ns: int) -> dict[str, Any]:
    """One server API command for ``event``: publish to its room, or broadcast to its rooms."""
    data = event.stamped(now_ns)
    channels = [centrifugo_codec.channel(room) for room in event.rooms]
    if len(channels) == 1:
        return {"publish": {"channel": channels[0], "data": data}}
    return {"broadcast": {"channels": channels, "data": data}}


class CentrifugoPublisher:
    """Centrifugo's HTTP server API on one keep-alive connection."""

    def __init__(self, api_url: str, api_key: str) -> None:
        self.api_url = api_url.rstrip("/")
        self.session = aiohttp.ClientSession(
            headers={"X-API-Key": api_key, "Content-Type": "application/json"},
            connector=aiohttp.TCPConnector(limit=1),
        )

    async def close(self) -> None:
        await self.session.close()

    async def paced(self, batch: Sequence[BenchEvent], rate_per_s: float) -> int:
        return await pace(batch, rate_per_s, self._send)

    async def burst(self, batch: Sequence[BenchEvent]) -> int:
        await self._send(batch)
        return len(batch)

    async def commands(self, commands: Sequence[dict[str, Any]]) -> None:
        """Server API commands as one ``/api/batch`` call (the storm's envelopes)."""
        await self._call("batch", {"commands": list(commands)})

    async def _send(self, batch: Sequence[BenchEvent]) -> None:
        now = time.monotonic_ns()
        commands = [centrifugo_command(event, now) for event in batch]
        if len(commands) == 1:
            ((method, params),) = commands[0].items()
            await self._call(method, params)
        else:
            await self._call("batch", {"commands": commands})

    async def _call(self, method: str, params: dict[str, Any]) -> None:
        async with self.session.post(f"{self.api_url}/{method}", data=orjson.dumps(params)) as resp:
            body = await resp.read()
        if resp.status != 200 or b'"error"' in body:
            raise RuntimeError(f"centrifugo {method}: HTTP {resp.status} {body[:300]!r}")
