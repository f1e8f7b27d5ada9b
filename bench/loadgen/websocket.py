"""What every benchmark client does below its protocol: a raw WebSocket's life.

:class:`WebSocketClient` is the asyncio protocol both load-generator clients
share (fleetcast's Socket.IO one and Centrifugo's): the HTTP upgrade, frame
splitting and reassembly, WebSocket PING/CLOSE, and how a start ends (ready,
failed, closed; a close after ready goes to the recorder). A subclass says
what to send first, what a text payload means and how it says goodbye; the
hot path (frames of a ready client) is its :meth:`_deliver`.
"""

from __future__ import annotations

import asyncio
import enum
from typing import TYPE_CHECKING, cast

from bench.loadgen import codec
from bench.loadgen.recorder import Recorder

if TYPE_CHECKING:
    from bench.loadgen.client import ClientSpec, Target

Frame = tuple[int, bool, bytes]


class State(enum.Enum):
    UPGRADING = 1
    OPENING = 2
    CONNECTING = 3
    SUBSCRIBING = 4
    READY = 5
    CLOSED = 6


class WebSocketClient(asyncio.Protocol):
    """One client's socket: upgrade, frames, ready/failed/closed; the protocol is the subclass's."""

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

    # --- what a protocol says ---------------------------------------------------

    def _upgrade_request(self) -> bytes:
        raise NotImplementedError

    def _upgraded(self) -> None:
        """The server said 101: the protocol's first step."""
        raise NotImplementedError

    def _deliver(self, frames: list[Frame]) -> None:
        """Frames of a ready client (the hot path)."""
        raise NotImplementedError

    def _text(self, payload: bytes) -> None:
        """One whole text message outside the hot path."""
        raise NotImplementedError

    def _goodbye(self) -> None:
        """What a polite client sends before its WebSocket close."""

    # --- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport.write(self._upgrade_request())

    def connection_lost(self, exc: Exception | None) -> None:
        if self.state is not State.CLOSED:
            self._closed(self.close_reason or ("reset" if exc else "eof"))

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if self.state is State.UPGRADING:
            status, buf = codec.take_upgrade(buf)
            if status is None:
                self._buf = buf
                return
            if status != 101:
                self._fail(f"http_{status}")
                return
            self._upgraded()
        frames, self._buf = codec.split_frames(buf)
        if self.state is State.READY:
            self._deliver(frames)
            return
        for frame in frames:
            self._control(*frame)

    # --- WebSocket frames ---------------------------------------------------------

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
            self._text(payload)

    # --- how a start ends -----------------------------------------------------------

    def _ready(self) -> None:
        self.state = State.READY
        if not self.ready.done():
            self.ready.set_result(None)

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
        """Leave politely: the protocol's goodbye, a WebSocket close, then close the socket."""
        if self.state is State.READY and self._transport is not None:
            self._goodbye()
            self._send(b"\x03\xe8", codec.OP_CLOSE)
        self.state = State.CLOSED
        if self._transport is not None:
            self._transport.close()
