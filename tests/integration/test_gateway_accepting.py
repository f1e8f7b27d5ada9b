"""The gateway's own listening site (transport/accepting.py): it stops accepting and resumes.

While the gate is shut a client's TCP connect still completes (the kernel
queues it in the listen backlog) but nothing answers its request; once the
gate opens, the queued request is answered. A real aiohttp app on loopback.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from fleetcast.gateway.transport import accepting

pytestmark = pytest.mark.integration

REQUEST = b"GET /hello HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


@pytest.fixture
async def site() -> AsyncIterator[tuple[accepting.Gate, accepting.GatedSite]]:
    async def hello(_: web.Request) -> web.Response:
        return web.Response(text="hello")

    app = web.Application()
    app.router.add_get("/hello", hello)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    gate = accepting.Gate()
    gated = accepting.GatedSite(runner, gate, "127.0.0.1", 0, backlog=16)
    await gated.start()
    try:
        yield gate, gated
    finally:
        await runner.cleanup()


async def ask(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(REQUEST)
    await writer.drain()
    return reader, writer


async def test_requests_wait_in_the_backlog_while_the_gate_is_shut(
    site: tuple[accepting.Gate, accepting.GatedSite],
) -> None:
    gate, gated = site
    reader, writer = await ask(gated.port)
    assert b"hello" in await asyncio.wait_for(reader.read(), 5)
    writer.close()
    gate.set(False)
    reader, writer = await ask(gated.port)  # the kernel completes the connect
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(reader.read(1), 0.3)
    gate.set(True)
    assert b"hello" in await asyncio.wait_for(reader.read(), 5)
    writer.close()
    assert gate.pauses == 1


async def test_a_stopped_site_stops_following_its_gate(
    site: tuple[accepting.Gate, accepting.GatedSite],
) -> None:
    gate, gated = site
    port = gated.port
    await gated.stop()
    gate.set(False)
    gate.set(True)  # nothing left to follow: no reader on a closed socket
    with pytest.raises(ConnectionRefusedError):
        await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 2)
