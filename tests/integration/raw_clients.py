"""Bare Socket.IO-over-WebSocket clients for tests that need control a library hides.

- :class:`SlowReader`: one connection whose reading pace the test sets (or stops),
  so TCP back-pressure reaches the gateway as it does from a slow phone link.
- :class:`ResumingClient`: a lean asyncio protocol (no task per socket) that
  tracks the last offset of its automatic rooms and reconnects with ``auth.since``,
  honouring ``rate_limited``'s ``retry_after``; thousands fit in one test process.

Both speak the frames of :mod:`bench.loadgen.codec` (the load generator's own
hand-written WebSocket / Engine.IO / Socket.IO codec).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

from bench.loadgen import codec


class SlowReader:
    """One raw connection on a non-blocking socket; reads only when :meth:`read` is called."""

    def __init__(self, port: int, *, rcvbuf: int | None = None) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.setblocking(False)
        self._buf = b""
        self.closed = False

    async def connect(self, token: str, *rooms: str) -> dict[str, Any]:
        """Upgrade, CONNECT with the token, subscribe to ``rooms``; returns the session."""
        loop = asyncio.get_running_loop()
        await loop.sock_connect(self.sock, ("127.0.0.1", self.port))
        request = codec.upgrade_request("127.0.0.1", self.port, "/ws/", "EIO=4&transport=websocket")
        await loop.sock_sendall(self.sock, request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += await loop.sock_recv(self.sock, 4096)
        head, _, self._buf = head.partition(b"\r\n\r\n")
        assert codec.upgrade_status(head) == 101, head
        await self.send(codec.sio_connect({"token": token}))
        session: dict[str, Any] = {}
        for ack_id, room in enumerate(rooms):
            await self.send(codec.sio_event("subscribe", {"room": room}, ack_id))
        acks = 0
        while not session or acks < len(rooms):
            for kind, name, data in await self.read(65536):
                if kind == 2 and name == "session":
                    session = data
                elif kind == 3:
                    assert data[0]["ok"], data
                    acks += 1
        return session

    async def send(self, payload: bytes) -> None:
        await asyncio.get_running_loop().sock_sendall(self.sock, codec.client_frame(payload))

    async def read(self, max_bytes: int) -> list[tuple[int, str | None, Any]]:
        """Read at most ``max_bytes`` (waiting for some); the Socket.IO packets completed.

        Each packet is ``(kind, event name or None, data)``: kind 2 is an event
        (data = its payload), 3 an ack (data = the ack's arguments). Pings are
        answered; a closed connection sets :attr:`closed`.
        """
        loop = asyncio.get_running_loop()
        chunk = await loop.sock_recv(self.sock, max_bytes)
        if not chunk:
            self.closed = True
        frames, self._buf = codec.split_frames(self._buf + chunk)
        packets: list[tuple[int, str | None, Any]] = []
        for opcode, _fin, payload in frames:
            if opcode == codec.OP_CLOSE:
                self.closed = True
            if opcode != codec.OP_TEXT or not payload:
                continue
            if payload[0] == codec.EIO_PING:
                await self.send(b"3")
            elif payload[0] == codec.EIO_MESSAGE and len(payload) > 1:
                packet = codec.parse_sio(payload[1:])
                if packet.kind == 2:
                    packets.append((2, packet.data[0], packet.data[1]))
                elif packet.kind in (3, 4):
                    packets.append((packet.kind, None, packet.data))
        return packets

    def close(self) -> None:
        self.sock.close()
