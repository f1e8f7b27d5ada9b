"""One benchmark client of Centrifugo: its JSON protocol over a raw WebSocket.

The Centrifugo counterpart of :class:`bench.loadgen.client.Client`, with the
same life: HTTP upgrade, ``connect`` with the client's JWT, one ``subscribe``
per room of the spec (all in one frame, as centrifuge-js batches them), ready
once every subscribe is answered; afterwards it counts the benchmark events it
receives through the same :class:`~bench.loadgen.recorder.Recorder`.

Centrifugo has no automatic org and user rooms, so the client subscribes to
every room in ``spec.rooms`` (the fleetcast client asks for one and is put in
the other two by the server): the same memberships, the same accounting.
"""

from __future__ import annotations

import asyncio
import time
from typing import cast

from bench.loadgen import centrifugo_codec as cf
from bench.loadgen import codec
from bench.loadgen.client import ClientSpec, State, Target
from bench.loadgen.recorder import Recorder


class CentrifugoClient(asyncio.Protocol):
    """A Centrifugo client that subscribes and then records benchmark events."""

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
        self._pending: set[int] = set()
        self._pong = False

    # --- asyncio.Protocol -----------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._transport.write(cf.upgrade_request(self.target.host, self.target.port))

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
            self.state, buf = State.CONNECTING, rest
            self._send(cf.connect_command(self.spec.token))
        frames, self._buf = codec.split_frames(buf)
        if self.state is State.READY:
            self._deliveries(frames)
            return
        for frame in frames:
            self._control(*frame)

    # --- protocol steps --------------------------------------------------------

    def _deliveries(self, frames: list[tuple[int, bool, bytes]]) -> None:
        """Hot path: publications to the recorder, one line each; the rest to _control."""
        now = time.monotonic_ns()
        for frame in frames:
            opcode, fin, payload = frame
            if opcode != codec.OP_TEXT or not fin:
                self._control(*frame)
                continue
            pushes = cf.lines(payload)
            self.recorder.receive(self.index, [(opcode, fin, p) for p in pushes], now)
            for line in pushes:
                if not line.startswith(cf.PUSH_PREFIX):
                    self._reply(cf.parse(line))

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
            if self.state is State.READY:
                self._deliveries([(opcode, True, payload)])
                return
            for line in cf.lines(payload):
                self._reply(cf.parse(line))

    def _reply(self, reply: cf.Reply) -> None:
        if reply.is_ping:
            if self._pong:
                self._send(cf.PONG)
        elif reply.command_id == 1 and self.state is State.CONNECTING:
            if reply.error:
                self._fail(f"connect_error:{reply.error.get('code', 'unknown')}")
                return
            self._pong = bool(reply.body.get("connect", {}).get("pong"))
            self._subscribe()
        elif reply.command_id in self._pending:
            if reply.error:
                self._fail(f"subscribe:{reply.error.get('code', 'refused')}")
                return
            self._pending.discard(reply.command_id)
            if not self._pending:
                self._ready()
        elif "disconnect" in reply.body:
            self.close_reason = f"disconnect_{reply.body['disconnect'].get('code', '?')}"
            self._abort()

    def _subscribe(self) -> None:
        self.state = State.SUBSCRIBING
        if not self.spec.rooms:
            self._ready()
            return
        frame, ids = cf.subscribe_commands(cf.channel(room) for room in self.spec.rooms)
        self._pending.update(ids)
        self._send(frame)

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
        """Leave politely: a WebSocket close (Centrifugo has no disconnect command)."""
        if self.state is State.READY:
            self._send(b"\x03\xe8", codec.OP_CLOSE)
        self.state = State.CLOSED
        if self._transport is not None:
            self._transport.close()
