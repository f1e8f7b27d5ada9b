"""Priorities on one connection: a client that reads slowly while positions flood its org.

The slow client is a raw WebSocket (:class:`SlowReader`) that follows a few
assets (one frame per position) and reads at a fixed pace far below the
flood, so TCP back-pressure reaches the gateway. Alerts published meanwhile
must reach it in order and without loss, ahead of the positions waiting in its
buffer; positions are shed; it is not cut off. A client that stops reading
altogether while alerts keep coming is cut off as ``slow_consumer`` (with the
reason as its last frame), and only once its priority frames would be lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import redis.asyncio as aioredis

from fleetcast.protocol import keys, wire
from tests.harness.gateway import (
    RunningGateway,
    gateway_settings,
    make_token,
    metric,
    scrape,
    start_gateway,
    wait_until,
)
from tests.integration.raw_clients import SlowReader

pytestmark = pytest.mark.integration

ORG = "o1"
ASSETS = [f"a{i}" for i in range(10)]
PAD = "p" * 900  # ~1 KB positions: the flood is ~3 MB/s
FLOOD_S = 4.0
POSITIONS_PER_MESSAGE = 30
MESSAGES_PER_S = 100  # 3,000 positions/s
ALERT_EVERY_S = 0.1
READ_BYTES, READ_EVERY_S = 8192, 0.02  # the slow client drains ~400 KB/s
MAX_BUFFERED = 200


def positions(step: int) -> list[wire.RoutedEvent]:
    return [
        wire.RoutedEvent(
            (f"asset:{asset}:org:{ORG}", f"fleet:org:{ORG}"),
            {},
            {
                "event_id": f"p{step}-{i}",
                "event_type": "asset_position_updated",
                "organization_id": ORG,
                "occurred_at": "2026-11-25T18:00:00Z",
                "data": {"asset_id": asset, "step": step, "pad": PAD},
            },
        )
        for i, asset in enumerate(ASSETS * (POSITIONS_PER_MESSAGE // len(ASSETS)))
    ]


def alert(n: int) -> wire.RoutedEvent:
    return wire.RoutedEvent(
        (f"org:{ORG}",),
        {},
        {
            "event_id": f"alert-{n}",
            "event_type": "alert_created",
            "organization_id": ORG,
            "occurred_at": "2026-11-25T18:00:00Z",
            "data": {"alert_id": f"al-{n}", "n": n, "sent": time.monotonic()},
        },
    )


@dataclass
class Seen:
    """What the slow client received, in order, and when each alert was published."""

    sent_at: list[float] = field(default_factory=list)  # alert n -> publish time
    alerts: list[tuple[int, float]] = field(default_factory=list)  # (n, delay s), as received
    positions: int = 0
    #: alert n -> positions the client read after n was published and before n arrived
    ahead: dict[int, int] = field(default_factory=dict)
    reasons: list[dict[str, Any]] = field(default_factory=list)

    def position_read(self, at: float) -> None:
        for n in range(len(self.alerts), len(self.sent_at)):
            if self.sent_at[n] > at:
                break
            self.ahead[n] = self.ahead.get(n, 0) + 1


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def flood(redis: aioredis.Redis, seconds: float, seen: Seen, *, alerts: bool = True) -> int:
    """Positions at MESSAGES_PER_S messages/s and one alert every ALERT_EVERY_S; alerts sent."""
    channel = keys.org_channel(ORG)
    start, step = time.monotonic(), 0
    while (now := time.monotonic()) - start < seconds:
        batch = positions(step)
        if alerts and now - start >= len(seen.sent_at) * ALERT_EVERY_S:
            batch.append(alert(len(seen.sent_at)))
            seen.sent_at.append(time.monotonic())
        await redis.publish(channel, wire.encode(ORG, batch))
        step += 1
        await asyncio.sleep(max(0.0, start + step / MESSAGES_PER_S - time.monotonic()))
    return len(seen.sent_at)


async def read_slowly(client: SlowReader, seen: Seen, stop: asyncio.Event) -> None:
    """READ_BYTES every READ_EVERY_S until stopped or closed."""
    while not stop.is_set() and not client.closed:
        for kind, name, data in await client.read(READ_BYTES):
            if kind != 2:
                continue
            if name == "asset_position_updated":
                seen.positions += 1
                seen.position_read(time.monotonic())
            elif name == "alert_created":
                seen.alerts.append((data["data"]["n"], time.monotonic() - data["data"]["sent"]))
            elif name == "disconnect_reason":
                seen.reasons.append(data)
        await asyncio.sleep(READ_EVERY_S)


async def slow_client(running: RunningGateway, user: str) -> SlowReader:
    """A dispatcher following ASSETS (one frame per position), with a 64 KiB receive buffer."""
    client = SlowReader(running.port, rcvbuf=64 * 1024)
    await client.connect(make_token(user, ORG), *(f"asset:{asset}" for asset in ASSETS))
    return client


async def stop_reading(task: asyncio.Task[None], stop: asyncio.Event) -> None:
    stop.set()
    with contextlib.suppress(Exception):
        await asyncio.wait_for(task, 5)


async def test_alerts_overtake_positions_for_a_slow_reader(redis_url: str, redis: Any) -> None:
    running = await start_gateway(gateway_settings(redis_url, max_buffered_messages=MAX_BUFFERED))
    client = await slow_client(running, "slow")
    seen, stop = Seen(), asyncio.Event()
    reader = asyncio.create_task(read_slowly(client, seen, stop))
    try:
        sent = await flood(redis, FLOOD_S, seen)
        await wait_until(lambda: len(seen.alerts) >= sent, within=60, what="every alert")
        samples = await scrape(running.url)
        delays = sorted(delay for _n, delay in seen.alerts)
        print(
            f"\nslow reader: alerts {len(seen.alerts)}/{sent}, positions read {seen.positions}, "
            f"shed {metric(samples, 'fleetcast_gateway_positions_shed_total'):.0f}, "
            f"positions ahead of an alert max {max(seen.ahead.values(), default=0)}, "
            f"alert delay p50 {delays[len(delays) // 2]:.2f} s, max {delays[-1]:.2f} s"
        )
        assert [n for n, _ in seen.alerts] == list(range(sent))  # every alert, in order
        assert metric(samples, "fleetcast_gateway_positions_shed_total") > 0
        assert metric(samples, "fleetcast_gateway_disconnects_total", reason="slow_consumer") == 0
        assert not client.closed
        assert seen.reasons == []
        # An alert overtakes what the gateway still holds; what it already gave TCP (bounded
        # send buffer, the client's receive buffer) stays ahead: a few hundred ~1 KB
        # positions, where a kernel-tuned 4 MiB send buffer let thousands through first.
        assert max(seen.ahead.values(), default=0) < 1000
    finally:
        await stop_reading(reader, stop)
        client.close()
        await running.stop()


async def test_cut_off_only_when_priority_frames_would_be_lost(redis_url: str, redis: Any) -> None:
    running = await start_gateway(gateway_settings(redis_url, max_buffered_messages=50))
    client = await slow_client(running, "stalled")  # connects, then never reads
    seen = Seen()
    try:
        await flood(redis, 2.0, seen, alerts=False)
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_positions_shed_total") > 0
        assert metric(samples, "fleetcast_gateway_disconnects_total", reason="slow_consumer") == 0
        assert len(running.gateway.registry) == 1  # positions alone never cut it off

        channel = keys.org_channel(ORG)
        for n in range(0, 400, 20):  # alerts alone beyond the bound: it must go
            await redis.publish(channel, wire.encode(ORG, [alert(k) for k in range(n, n + 20)]))
        await wait_until(lambda: len(running.gateway.registry) == 0, what="the cut-off")
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_disconnects_total", reason="slow_consumer") == 1

        stop = asyncio.Event()  # the client reads what reached it: the reason comes last
        await read_slowly(client, seen, stop)
        assert client.closed
        if seen.reasons:
            assert seen.reasons[-1]["code"] == "slow_consumer"
            assert seen.reasons[-1]["reconnect"] is True
    finally:
        client.close()
        await running.stop()
