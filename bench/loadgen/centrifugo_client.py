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

import time

from bench.loadgen import centrifugo_codec as cf
from bench.loadgen import codec
from bench.loadgen.client import ClientSpec, Target
from bench.loadgen.recorder import Recorder
from bench.loadgen.websocket import Frame, State, WebSocketClient


class CentrifugoClient(WebSocketClient):
    """A Centrifugo client that subscribes and then records benchmark events."""

    def __init__(self, index: int, spec: ClientSpec, target: Target, recorder: Recorder) -> None:
        super().__init__(index, spec, target, recorder)
        self._pending: set[int] = set()
        self._pong = False

    def _upgrade_request(self) -> bytes:
        return cf.upgrade_request(self.target.host, self.target.port)

    def _upgraded(self) -> None:
        self.state = State.CONNECTING
        self._send(cf.connect_command(self.spec.token))

    def _text(self, payload: bytes) -> None:
        if self.state is State.READY:
            self._deliver([(codec.OP_TEXT, True, payload)])
            return
        for line in cf.lines(payload):
            self._reply(cf.parse(line))

    # --- protocol steps --------------------------------------------------------

    def _deliver(self, frames: list[Frame]) -> None:
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
