"""One benchmark client: a Socket.IO v5 connection over a raw WebSocket.

Each client is an :class:`asyncio.Protocol`, not a task: thousands of them
cost one callback per socket read and no scheduling of their own. A client
connects as a real one does (HTTP upgrade, Engine.IO open, Socket.IO CONNECT
with ``{"token": ...}``, then one ``subscribe`` per room, waiting for every
ack) and afterwards only counts the benchmark events it receives.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bench.loadgen import codec
from bench.loadgen.recorder import Recorder
from bench.loadgen.websocket import Frame, State, WebSocketClient

__all__ = ["Client", "ClientSpec", "Outcome", "State", "Target"]


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


class Client(WebSocketClient):
    """A Socket.IO client that subscribes and then records benchmark events."""

    def __init__(self, index: int, spec: ClientSpec, target: Target, recorder: Recorder) -> None:
        super().__init__(index, spec, target, recorder)
        self._pending_acks: set[int] = set()

    def _upgrade_request(self) -> bytes:
        t = self.target
        path = t.path.rstrip("/") + "/"  # engine.io servers mount at "<path>/"
        return codec.upgrade_request(t.host, t.port, path, t.query)

    def _upgraded(self) -> None:
        self.state = State.OPENING  # the server's Engine.IO OPEN comes next

    def _deliver(self, frames: list[Frame]) -> None:
        self.recorder.receive(self.index, frames, time.monotonic_ns())
        for frame in frames:
            if frame[1] and frame[2][:2] != b"42":
                self._control(*frame)

    def _text(self, payload: bytes) -> None:
        self._engineio(payload)

    def _goodbye(self) -> None:
        self._send(b"41")  # Socket.IO disconnect

    # --- protocol steps --------------------------------------------------------

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
