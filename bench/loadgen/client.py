"""One benchmark client: a Socket.IO v5 connection over a raw WebSocket.

Each client is an :class:`asyncio.Protocol`, not a task: thousands of them
cost one callback per socket read and no scheduling of their own. A client
connects as a real one does (HTTP upgrade, Engine.IO open, Socket.IO CONNECT
with ``{"token": ...}``, then one ``subscribe`` per room, waiting for every
ack) and afterwards only counts the benchmark events it receives.
"""

from __future__ import annotations

import asyncio
import enum
import time
from dataclasses import dataclass, field
from typing import Any, cast

from bench.loadgen import codec
from bench.loadgen.recorder import Recorder


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """What one client is: its token, the rooms it asks for, the rooms it is in.

    ``rooms`` are the server-side names of every room it belongs to once
    subscribed (automatic org and user rooms included); they tell which
    events it must receive.
    """

    token: str
    subscribe: tuple[str, ...]
    rooms: tuple[str, ...]

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ClientSpec:
        return cls(doc["token"], tuple(doc["subscribe"]), tuple(doc["rooms"]))


class State(enum.Enum):
    UPGRADING = 1
    OPENING = 2
    CONNECTING = 3
    SUBSCRIBING = 4
    READY = 5
    CLOSED = 6


@dataclass(slots=True)
class Target:
    host: str
    port: int
    path: str
    query: str = "EIO=4&transport=websocket"


@dataclass(slots=True)
class Outcome:
    """How a client's start ended: ``error`` is ``None`` when it is subscribed."""

    error: str | None = None
    detail: Any = None
    closes: dict[str, int] = field(default_factory=dict)


class Client(asyncio.Protocol):
    """A Socket.IO client that subscribes and then records benchmark events."""

    def __init__(self, index: int, spec: ClientSpec, target: Target, recorder: Recorder) -> None:
        self.index = index
        self.spec = spec
        self.target = target
        self.recorder = recorder
        self.state = State.UPGRADING
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.error: str | None = None
        self.close_reason: str | None = None
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._fragments: list[bytes] = []
        self._pending_acks: set[int] = set()

    # --- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport = transport
        t = self.target
        path = t.path.rstrip("/") + "/"  # engine.io servers mount at "<path>/"
        transport.write(codec.upgrade_request(t.host, t.port, path, t.query))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state is not State.CLOSED:
            self._closed(self.close_reason or ("reset" if exc else "eof"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if self.state is State.UPGRADING:
            head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                self._buf = buf
                return
            status = codec.upgrade_status(head)
            if status != 101:
                self._fail(f"http_{status}")
                return
            self.state, buf = State.OPENING, rest
        frames, self._buf = codec.split_frames(buf)
        if self.state is State.READY:
            self.recorder.receive(self.index, frames, time.monotonic_ns())
            for frame in frames:
                if frame[1] and frame[2][:2] != b"42":
                    self._control(*frame)
            return
        for frame in frames:
            self._control(*frame)

    # --- protocol steps --------------------------------------------------------

    def _control(self, opcode: int, fin: bool, payload: bytes) -> None:
        if opcode == codec.OP_CONT or not fin:
            self._fragments.append(payload)
            if not fin:
                return
            payload, self._fragments = b"".join(self._fragments), []
        if opcode == codec.OP_PING:
            self._send(payload, codec.OP_PONG)
        elif opcode == codec.OP_CLOSE:
            code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else 1005
            self.close_reason = f"ws_close_{code}"
            self._abort()
        elif opcode == codec.OP_TEXT and payload:
            self._engineio(payload)

    def _engineio(self, payload: bytes) -> None:
        kind = payload[0]
        if kind == codec.EIO_PING:
            self._send(b"3")
        elif kind == codec.EIO_OPEN and self.state is State.OPENING:
            self.state = State.CONNECTING
            self._send(codec.sio_connect({"token": self.spec.token}))
        elif kind == codec.EIO_MESSAGE and len(payload) > 1:
            self._socketio(codec.parse_sio(payload[1:]))
        elif kind == codec.EIO_CLOSE:
            self.close_reason = "eio_close"
            self._abort()

    def _socketio(self, packet: codec.SioPacket) -> None:
        if packet.kind == 0 and self.state is State.CONNECTING:
            self._subscribe()
        elif packet.kind == 4:
            code = packet.data.get("data", {}) if isinstance(packet.data, dict) else {}
            self._fail(f"connect_error:{(code or {}).get('code', 'unknown')}")
        elif packet.kind == 3 and packet.ack_id in self._pending_acks:
            answer = packet.data[0] if isinstance(packet.data, list) and packet.data else {}
            if not (isinstance(answer, dict) and answer.get("ok")):
                error = answer.get("error", {}) if isinstance(answer, dict) else {}
                self._fail(f"subscribe:{(error or {}).get('code', 'refused')}")
                return
            self._pending_acks.discard(packet.ack_id)
            if not self._pending_acks:
                self._ready()
        elif packet.kind == 1:
            self.close_reason = "sio_disconnect"
            self._abort()

    def _subscribe(self) -> None:
        self.state = State.SUBSCRIBING
        if not self.spec.subscribe:
            self._ready()
            return
        for ack_id, room in enumerate(self.spec.subscribe):
            self._pending_acks.add(ack_id)
            self._send(codec.sio_event("subscribe", {"room": room}, ack_id))

    def _ready(self) -> None:
        self.state = State.READY
        if not self.ready.done():
            self.ready.set_result(None)

    # --- I/O helpers ----------------------------------------------------------------

    def _send(self, payload: bytes, opcode: int = codec.OP_TEXT) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(codec.client_frame(payload, opcode))

    def _fail(self, error: str) -> None:
        self.error = error
        self._abort()

    def _abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
        self._closed(self.close_reason or self.error or "aborted")

    def _closed(self, reason: str) -> None:
        was_ready = self.state is State.READY
        self.state = State.CLOSED
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(self.error or reason))
        if was_ready:
            self.recorder.closed(self.index, reason)

    def close(self) -> None:
        """Leave politely: Socket.IO disconnect, then close the socket."""
        if self.state is State.READY and self._transport is not None:
            self._send(b"41")
            self._send(b"\x03\xe8", codec.OP_CLOSE)
        self.state = State.CLOSED
        if self._transport is not None:
            self._transport.close()
