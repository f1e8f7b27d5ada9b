"""An Engine.IO socket's websocket after the handshake, read without aiohttp.

For every open websocket aiohttp keeps its request handler and parser, the
parsed request, a reader queue and a writer, and two tasks parked in about
ten coroutine frames: some 12 KB per idle connection, about what a whole
Node.js socket.io connection costs. So once aiohttp has answered the upgrade
(with its checks: handshake headers, CORS, Engine.IO version, send buffer
size), :func:`hand_over` gives the TCP transport to a :class:`WebSocketLink`,
a small protocol object, and aiohttp forgets the connection (its bookkeeping
runs as for a lost connection, without closing the transport).

The link splits client frames (:func:`wsframes.split_client_frames`), answers
websocket PINGs and CLOSEs itself, runs the Engine.IO upgrade probe when the
socket comes from long-polling, and hands Engine.IO packets to the socket:
a PONG in place, anything else in a task, as python-engineio would. Writes go
through the socket's Outlet, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, Protocol

import structlog
from aiohttp import web
from engineio import packet as eio_packet

from fleetcast.gateway.transport import wsframes
from fleetcast.gateway.transport.guard import Guard
from fleetcast.gateway.transport.outlet import Outlet

log = structlog.stdlib.get_logger(__name__)

#: Probe stages of an upgrade from long-polling: waiting for ``2probe``, then for ``5``.
_OPEN, _AWAIT_PROBE, _AWAIT_UPGRADE = 0, 1, 2


class LinkedSocket(Protocol):
    """What a link needs of its Engine.IO socket (engine.LeanSocket)."""

    sid: str
    queue: Outlet
    guard: Guard
    upgrading: bool
    upgraded: bool

    def schedule_ping(self) -> None: ...

    def receive(self, pkt: eio_packet.Packet) -> Coroutine[Any, Any, None]: ...

    def websocket_closed(self) -> Coroutine[Any, Any, None]: ...

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None: ...


class Detached(web.WebSocketResponse):
    """The upgrade's response, once its transport belongs to a link: aiohttp must not end it."""

    async def write_eof(self) -> None:  # type: ignore[override]
        """Nothing to write: the link owns the connection (aiohttp would send a close frame)."""


def hand_over(request: web.Request, link: WebSocketLink) -> None:
    """Give the request's TCP transport to ``link``; aiohttp then lets go of the connection."""
    transport, handler = request.transport, request.protocol
    assert transport is not None
    transport.set_protocol(link)
    handler.transport = None  # so aiohttp's cleanup below leaves the transport open
    handler.connection_lost(None)  # drops its parser, timers and place in the server's table
    if not transport.is_reading():
        transport.resume_reading()


class WebSocketLink(asyncio.Protocol):
    """Reads one client's websocket and hands its Engine.IO packets to the socket."""

    __slots__ = ("_buf", "_max", "_parts", "_sock", "_stage", "_transport")

    def __init__(
        self, sock: LinkedSocket, transport: asyncio.Transport, *, max_size: int, probe: bool
    ) -> None:
        self._sock = sock
        self._transport = transport
        self._max = max_size
        self._buf = b""
        self._parts: list[Any] | None = None  # [opcode, size, payload, ...] of a fragmented message
        self._stage = _AWAIT_PROBE if probe else _OPEN

    # --- asyncio.Protocol ---------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        try:
            frames, self._buf = wsframes.split_client_frames(buf, self._max)
            for opcode, fin, payload in frames:
                if self._transport.is_closing():
                    return
                self._frame(opcode, fin, payload)
        except wsframes.FrameError as exc:
            log.info("websocket protocol error", sid=self._sock.sid, error=str(exc))
            self.close(exc.code)

    def eof_received(self) -> None:
        """The client half-closed: the transport closes (connection_lost follows)."""

    def connection_lost(self, exc: BaseException | None) -> None:
        sock = self._sock
        if self._stage != _OPEN:  # the upgrade never completed: long-polling goes on
            sock.upgrading = False
            return
        sock.queue.lost()
        sock.spawn(sock.websocket_closed())

    # --- frames and packets ------------------------------------------------------------------

    def close(self, code: int = wsframes.CLOSE_NORMAL) -> None:
        """A close frame with ``code``, then close the transport once flushed."""
        if self._stage == _OPEN:
            self._sock.queue.shut(code)
            return
        transport = self._transport
        if not transport.is_closing():
            transport.write(wsframes.close(code))
            transport.close()

    def _frame(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode == wsframes.OP_PING:
            self._transport.write(wsframes.frame(payload, wsframes.OP_PONG))
        elif opcode == wsframes.OP_CLOSE:
            self.close(int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1000)
        elif opcode == wsframes.OP_PONG:
            pass
        elif opcode != wsframes.OP_CONTINUATION:
            if self._parts is not None:
                raise wsframes.FrameError(wsframes.CLOSE_PROTOCOL_ERROR, "message interrupted")
            if fin:
                self._message(opcode, payload)
            else:
                self._parts = [opcode, len(payload), payload]
        else:
            self._continue(fin, payload)

    def _continue(self, fin: bool, payload: bytes) -> None:
        parts = self._parts
        if parts is None:
            raise wsframes.FrameError(wsframes.CLOSE_PROTOCOL_ERROR, "continuation of nothing")
        parts[1] += len(payload)
        if parts[1] > self._max:
            raise wsframes.FrameError(wsframes.CLOSE_TOO_BIG, f"message over {self._max} bytes")
        parts.append(payload)
        if fin:
            self._parts = None
            self._message(parts[0], b"".join(parts[2:]))

    def _message(self, opcode: int, payload: bytes) -> None:
        data: str | bytes = payload
        if opcode == wsframes.OP_TEXT:
            try:
                data = payload.decode()
            except UnicodeDecodeError:
                raise wsframes.FrameError(1007, "text frame is not UTF-8") from None
        try:
            pkt = eio_packet.Packet(encoded_packet=data)
        except Exception:
            raise wsframes.FrameError(
                wsframes.CLOSE_PROTOCOL_ERROR, "not an Engine.IO packet"
            ) from None
        if self._stage != _OPEN:
            self._upgrade(pkt)
        elif pkt.packet_type == eio_packet.PONG:
            self._sock.schedule_ping()
        elif pkt.packet_type in (eio_packet.MESSAGE, eio_packet.CLOSE) and (
            self._sock.guard.tripped is None  # a client being cut off gets no more tasks
        ):
            self._sock.spawn(self._sock.receive(pkt))

    def _upgrade(self, pkt: eio_packet.Packet) -> None:
        """Engine.IO upgrade: ``2probe`` -> ``3probe`` (and end the pending poll), then ``5``."""
        sock, kind = self._sock, pkt.packet_type
        if self._stage == _AWAIT_PROBE and kind == eio_packet.PING and pkt.data == "probe":
            self._transport.write(wsframes.eio_packet("3probe"))
            sock.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))
            self._stage = _AWAIT_UPGRADE
        elif self._stage == _AWAIT_UPGRADE and kind == eio_packet.UPGRADE:
            self._stage = _OPEN
            sock.upgraded, sock.upgrading = True, False
            sock.queue.attach(self._transport)
        else:
            log.info("websocket upgrade failed", sid=sock.sid, packet=kind)
            sock.upgrading = False
            self.close()
