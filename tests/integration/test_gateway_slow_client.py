"""A client that stops reading is cut off without slowing anyone else.

The slow client is a bare TCP socket with a small receive buffer that speaks
just enough websocket to connect and subscribe, then never reads again, so
TCP back-pressure stalls its transport and fills the gateway's bounded
per-connection buffer: positions are shed first, and once only priority
frames would be lost it is cut off as ``slow_consumer``. A client of the same
org that reads normally keeps receiving every alert meanwhile.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import struct
from collections.abc import Callable

import pytest
import redis.asyncio as aioredis

from fleetcast.protocol import keys, wire
from tests.harness.gateway import (
    Client,
    gateway_settings,
    make_token,
    metric,
    scrape,
    start_gateway,
    wait_until,
)

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]
PADDING = "x" * 4000
MAX_PUBLISHES = 300


def batch(n: int) -> bytes:
    """30 positions and 3 alerts for the org room.

    Positions go to the org room (one frame each) rather than the fleet room,
    which batches them once a second and would never fill a buffer.
    """
    positions = [
        wire.RoutedEvent(
            ("org:o1",),
            {},
            {
                "event_id": f"p{n}-{i}",
                "event_type": "asset_position_updated",
                "organization_id": "o1",
                "occurred_at": "2026-11-25T18:00:00Z",
                "data": {"asset_id": f"a{i}", "pad": PADDING},
            },
        )
        for i in range(30)
    ]
    alerts = [
        wire.RoutedEvent(
            ("org:o1",),
            {},
            {
                "event_id": f"alert{n}-{i}",
                "event_type": "alert_created",
                "organization_id": "o1",
                "occurred_at": "2026-11-25T18:00:00Z",
                "data": {},
            },
        )
        for i in range(3)
    ]
    return wire.encode("o1", positions + alerts)


def frame(text: str) -> bytes:
    """A masked client text frame (RFC 6455)."""
    payload, mask = text.encode(), os.urandom(4)
    header = bytes([0x81])
    if len(payload) < 126:
        header += bytes([0x80 | len(payload)])
    else:
        header += bytes([0x80 | 126]) + struct.pack("!H", len(payload))
    return header + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(payload))


async def stalled_client(port: int, token: str) -> socket.socket:
    """Connect, authenticate, subscribe to the fleet room, and never read again."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
    sock.setblocking(False)
    loop = asyncio.get_running_loop()
    await loop.sock_connect(sock, ("127.0.0.1", port))
    request = (
        f"GET /ws/?EIO=4&transport=websocket HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
        "Upgrade: websocket\r\nConnection: Upgrade\r\n"
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    assert b" 101 " in await loop.sock_recv(sock, 4096)
    await loop.sock_sendall(sock, frame("40" + json.dumps({"token": token})))
    await loop.sock_sendall(sock, frame('420["subscribe",{"room":"fleet"}]'))
    return sock


async def test_slow_client_is_shed_then_cut_off(redis_url: str, clients: ClientFactory) -> None:
    running = await start_gateway(gateway_settings(redis_url, max_buffered_messages=20))
    slow = await stalled_client(running.port, make_token("slow"))
    try:
        await wait_until(lambda: len(running.gateway.registry.members("fleet:org:o1")) == 1)
        fast = clients(running.url)
        assert await fast.connect(make_token("fast"))
        await fast.wait_for("session")
        published = 0
        async with aioredis.Redis.from_url(redis_url) as redis:
            while published < MAX_PUBLISHES and running.gateway.registry.rooms.get("fleet:org:o1"):
                await redis.publish(keys.org_channel("o1"), batch(published))
                published += 1
                await asyncio.sleep(0.005)
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_disconnects_total", reason="slow_consumer") == 1
        assert metric(samples, "fleetcast_gateway_positions_shed_total") > 0
        alerts = await fast.wait_for("alert_created", 3 * published)
        assert [a["event_id"] for a in alerts] == [
            f"alert{n}-{i}" for n in range(published) for i in range(3)
        ]
        assert fast.sio.connected
    finally:
        slow.close()
        await running.stop()
