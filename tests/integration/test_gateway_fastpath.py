"""The fast path on the wire: standard clients on every transport, websocket framing, heartbeats.

Websocket frames are written straight to the TCP transport and the socket is
read by fleetcast's own WebSocketLink once aiohttp has answered the upgrade
(engine.py, outlet.py, wslink.py). Real python-socketio clients on
websocket, long-polling and polling-then-upgrade must see the same events in
the same order; a raw client checks what a library would hide (no
permessage-deflate, control frames, protocol errors, heartbeats, shutdown).
The slow client cut off while others keep receiving is test_gateway_slow_client.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis

from bench.loadgen import codec
from fleetcast.protocol import keys, wire
from tests.harness.gateway import (
    WAIT_S,
    Client,
    RunningGateway,
    gateway_settings,
    make_token,
    metric,
    scrape,
    start_gateway,
    wait_until,
)

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]
TRANSPORTS = {
    "websocket": ("websocket",),
    "polling": ("polling",),
    "upgraded": ("polling", "websocket"),  # python-socketio's default: poll, then upgrade
}


def event(n: int, event_type: str, room: str) -> wire.RoutedEvent:
    data: dict[str, Any] = {"n": n, "channel_id": "c1", "text": "é" * (n % 7) + "x" * (n * 40)}
    if event_type == "asset_position_updated":
        data["asset_id"] = f"a{n % 3}"
    envelope = {"event_id": f"e{n}", "event_type": event_type, "organization_id": "o1",
                "occurred_at": "2026-11-25T18:00:00Z", "data": data}  # fmt: skip
    return wire.RoutedEvent((room,), {room: f"{1700000000000 + n}-0"}, envelope)


def server_frame(buf: bytes) -> tuple[int, bytes, bytes] | None:
    """(first byte, payload, rest) of the unmasked frame at the head of ``buf``, if complete."""
    if len(buf) < 2:
        return None
    assert not buf[1] & 0x80, "a server frame is never masked"
    size, at = buf[1] & 0x7F, 2
    if size >= 126:
        at = 4 if size == 126 else 10
        if len(buf) < at:
            return None
        size = int.from_bytes(buf[2:at], "big")
    if len(buf) < at + size:
        return None
    return buf[0], buf[at : at + size], buf[at + size :]


class RawSocket:
    """A bare websocket client: raw frames in and out, nothing hidden."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.head = b""
        self._buf = b""

    @classmethod
    async def open(cls, port: int, *, extensions: str | None = None) -> RawSocket:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        request = codec.upgrade_request("127.0.0.1", port, "/ws/", "EIO=4&transport=websocket")
        if extensions:
            request = request[:-2] + f"Sec-WebSocket-Extensions: {extensions}\r\n\r\n".encode()
        writer.write(request)
        raw = cls(reader, writer)
        raw.head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
        assert codec.upgrade_status(raw.head) == 101, raw.head
        return raw

    def send(self, payload: bytes, opcode: int = codec.OP_TEXT) -> None:
        self.writer.write(codec.client_frame(payload, opcode))

    async def frame(self) -> tuple[int, int, bytes]:
        """(first byte, opcode, payload) of the next server frame; (-1, -1, b"") at EOF."""
        while (parsed := server_frame(self._buf)) is None:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancel that lands as the read completes, and a cancelled reader
            # loop would then go on forever.
            async with asyncio.timeout(WAIT_S):
                data = await self.reader.read(65536)
            if not data:
                return -1, -1, b""
            self._buf += data
        first, payload, self._buf = parsed
        return first, first & 0x0F, payload

    async def engineio(self) -> bytes:
        """The payload of the next text frame (an Engine.IO packet)."""
        first, opcode, payload = await self.frame()
        assert opcode == codec.OP_TEXT, (first, opcode, payload)
        assert first == 0x81  # final, no RSV bit: nothing was negotiated
        return payload

    async def connect(self, token: str) -> None:
        """OPEN, then Socket.IO CONNECT with the token; waits for the session event."""
        assert (await self.engineio()).startswith(b"0{")
        self.send(codec.sio_connect({"token": token}))
        assert (await self.engineio()).startswith(b"40")
        assert b'"session"' in await self.engineio()

    async def closed(self) -> bool:
        """True once the server closed the connection (after any frames still coming)."""
        for _ in range(100):
            first, _, _ = await self.frame()
            if first == -1:
                return True
        return False

    def close(self) -> None:
        self.writer.close()


@pytest.fixture
async def raw_sockets() -> AsyncIterator[list[RawSocket]]:
    made: list[RawSocket] = []
    try:
        yield made
    finally:
        for raw in made:
            raw.close()


async def test_websocket_polling_and_upgraded_clients_get_the_same_events_in_order(
    gateway: RunningGateway, clients: ClientFactory, redis_url: str
) -> None:
    ready: dict[str, Client] = {}
    for name, transports in TRANSPORTS.items():
        client = clients(gateway.url)
        assert await client.connect(make_token(f"u-{name}"), transports=transports)
        await client.wait_for("session")
        assert (await client.call("subscribe", {"room": "channel:c1"}))["ok"]
        ready[name] = client
    await wait_until(lambda: ready["upgraded"].sio.transport() == "websocket", WAIT_S, "upgrade")
    kinds = ("transmission_started", "asset_position_updated", "alert_created")

    def count(client: Client) -> int:
        return sum(len(client.received(kind)) for kind in kinds)

    batches = [
        [event(n, kinds[n % 3], "channel:c1:org:o1") for n in range(start, start + 10)]
        for start in range(0, 60, 10)
    ]
    async with aioredis.Redis.from_url(redis_url) as redis:
        for batch in batches:
            assert await redis.publish(keys.org_channel("o1"), wire.encode("o1", batch)) == 1
    for client in ready.values():
        await wait_until(lambda c=client: count(c) == 60, WAIT_S, "60 events")  # type: ignore[misc]
    seen = {
        name: [(e, d) for e, d in client.events if e in kinds] for name, client in ready.items()
    }
    assert [d["event_id"] for _, d in seen["websocket"]] == [f"e{n}" for n in range(60)]
    assert seen["polling"] == seen["websocket"]
    assert seen["upgraded"] == seen["websocket"]
    assert seen["websocket"][8][1]["data"]["text"].startswith("é")  # UTF-8 survived the framing


async def test_handshake_never_negotiates_permessage_deflate(
    gateway: RunningGateway, raw_sockets: list[RawSocket]
) -> None:
    raw = await RawSocket.open(
        gateway.port, extensions="permessage-deflate; client_max_window_bits"
    )
    raw_sockets.append(raw)
    assert b"sec-websocket-extensions" not in raw.head.lower()
    await raw.connect(make_token("raw"))  # every frame so far was plain text, RSV bits clear


async def test_websocket_ping_and_close_frames_are_answered(
    gateway: RunningGateway, raw_sockets: list[RawSocket]
) -> None:
    raw = await RawSocket.open(gateway.port)
    raw_sockets.append(raw)
    await raw.connect(make_token("raw"))
    raw.send(b"hello?", codec.OP_PING)
    assert await raw.frame() == (0x8A, codec.OP_PONG, b"hello?")
    raw.send((4001).to_bytes(2, "big"), codec.OP_CLOSE)
    assert await raw.frame() == (0x88, codec.OP_CLOSE, (4001).to_bytes(2, "big"))
    assert await raw.closed()
    await wait_until(lambda: len(gateway.gateway.registry) == 0, WAIT_S, "disconnect")
    samples = await scrape(gateway.url)
    assert metric(samples, "fleetcast_gateway_disconnects_total", reason="transport_close") == 1


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"\x81\x05hello", 1002),  # unmasked client frame
        # over max_client_message_bytes: refused from the header, before the payload
        (codec.client_frame(b"4" + b"x" * 70_000)[:20], 1009),
        (codec.client_frame(b"abc", 0x3), 1002),  # reserved opcode
        (b"\xc1\x83" + b"\0\0\0\0" + b"abc", 1002),  # RSV1 without permessage-deflate
    ],
)
async def test_protocol_errors_close_the_websocket_with_a_code(
    gateway: RunningGateway, raw_sockets: list[RawSocket], frame: bytes, code: int
) -> None:
    raw = await RawSocket.open(gateway.port)
    raw_sockets.append(raw)
    await raw.connect(make_token("raw"))
    raw.writer.write(frame)
    _, opcode, payload = await raw.frame()
    assert (opcode, int.from_bytes(payload[:2], "big")) == (codec.OP_CLOSE, code)
    assert await raw.closed()
    await wait_until(lambda: len(gateway.gateway.registry) == 0, WAIT_S, "disconnect")


async def test_a_fragmented_message_is_reassembled(
    gateway: RunningGateway, raw_sockets: list[RawSocket]
) -> None:
    raw = await RawSocket.open(gateway.port)
    raw_sockets.append(raw)
    await raw.connect(make_token("raw"))
    message = b'420["subscribe",{"room":"channel:c9"}]'
    first = bytearray(codec.client_frame(message[:10]))
    first[0] &= 0x7F  # not final
    raw.writer.write(bytes(first) + codec.client_frame(message[10:], codec.OP_CONT))
    assert await raw.engineio() == b'430[{"ok":true,"room":"channel:c9"}]'


async def test_silent_clients_are_dropped_after_the_ping_timeout(
    redis_url: str, raw_sockets: list[RawSocket]
) -> None:
    running = await start_gateway(gateway_settings(redis_url, ping_interval=0.3, ping_timeout=0.3))
    try:
        answering, silent = await RawSocket.open(running.port), await RawSocket.open(running.port)
        raw_sockets.extend((answering, silent))
        await answering.connect(make_token("answering"))
        await silent.connect(make_token("silent"))

        async def answer() -> None:
            while await answering.engineio() == b"2":
                answering.send(b"3")

        answerer = asyncio.create_task(answer())
        assert await silent.engineio() == b"2"  # a PING one interval after the handshake
        assert await silent.closed()  # unanswered: closed ping_timeout later
        await asyncio.sleep(1.0)  # three more intervals for the one that answers
        assert not answerer.done()
        assert len(running.gateway.registry) == 1
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_disconnects_total", reason="ping_timeout") == 1
        answerer.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await answerer
    finally:
        await running.stop()


async def test_shutdown_closes_websockets_aiohttp_no_longer_knows(
    redis_url: str, raw_sockets: list[RawSocket]
) -> None:
    running = await start_gateway(gateway_settings(redis_url))
    raw = await RawSocket.open(running.port)
    raw_sockets.append(raw)
    await raw.connect(make_token("raw"))
    await running.runner.cleanup()  # no drain first
    assert await raw.closed()
