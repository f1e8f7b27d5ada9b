"""A lean resuming client: thousands in one process, each one asyncio protocol (no task).

It speaks what a field client needs through a reconnect storm: the WebSocket
upgrade, Engine.IO open and pings, Socket.IO CONNECT with ``auth.since`` (the
last offset it saw in each of its automatic rooms: ``org`` and ``user:<sub>``),
``session`` (with the server's ``recovered`` answer), events, and the
``rate_limited`` refusal whose ``retry_after`` it honours. It records every
event id it received, so a run can count what was lost. The frames come from
the load generator's codec (:mod:`bench.loadgen.codec`).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, cast

import orjson

from bench.loadgen import codec

QUERY = "EIO=4&transport=websocket"


def _nothing(*_: object) -> None:
    return None


class ResumingClient(asyncio.Protocol):
    """One field client; the storm driver decides where and when it (re)connects.

    ``on_ready`` fires when ``session`` arrives, ``on_lost`` when a ready
    connection ends, ``on_refused(client, retry_after)`` on ``rate_limited``,
    ``on_failed(client, error)`` when a connection ends before it was ready
    for any other reason (refused socket, HTTP error, timeout).
    """

    def __init__(
        self,
        index: int,
        token: str,
        *,
        path: str = "/ws",
        auth: dict[str, Any] | None = None,
        after_session: bytes = b"",
    ) -> None:
        self.index = index
        self.token = token
        self.path = path.rstrip("/") + "/"
        #: More of the CONNECT's auth (``state``), and a packet to send once in session.
        self.auth, self.after_session = auth or {}, after_session
        #: Bytes received (the upgrade's answer too), and those of ``*_snapshot`` events.
        self.bytes_in = 0
        self.snapshots: dict[str, int] = {}
        self.offsets: dict[str, str] = {}
        self.received: set[str] = set()
        self.duplicates = 0
        self.recovered: dict[str, bool] = {}
        self.refusals: list[float] = []
        self.errors: list[str] = []
        #: Connection attempts made before the last refusal's retry_after had passed.
        self.retried_early = 0
        self.ready_at: float | None = None
        self.on_ready: Callable[[ResumingClient], None] = _nothing
        self.on_lost: Callable[[ResumingClient], None] = _nothing
        self.on_refused: Callable[[ResumingClient, float], None] = _nothing
        self.on_failed: Callable[[ResumingClient, str], None] = _nothing
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._upgraded = False
        self._ready = False
        self._settled = False  # this attempt already reported its end
        self._not_before = 0.0
        #: Set while the client has a session (waiters use it instead of polling).
        self.session = asyncio.Event()

    @property
    def ready(self) -> bool:
        return self._ready

    # --- asyncio.Protocol ------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self._buf, self._upgraded, self._ready, self._settled = b"", False, False, False
        self.session.clear()
        if time.monotonic() < self._not_before:
            self.retried_early += 1
        host, port = self._transport.get_extra_info("peername")[:2]
        self._transport.write(self._upgrade_request(host, port))

    def connection_lost(self, exc: Exception | None) -> None:
        was_ready, self._ready, self._transport = self._ready, False, None
        self.session.clear()
        if was_ready:
            self.ready_at = None
            self.on_lost(self)
        elif not self._settled:
            self._settled = True
            self.on_failed(self, "closed before session")

    def data_received(self, data: bytes) -> None:
        self.bytes_in += len(data)
        buf = self._buf + data if self._buf else data
        if not self._upgraded:
            status, buf = codec.take_upgrade(buf)
            if status is None:
                self._buf = buf
                return
            if status != 101:
                self._fail(f"http_{status}")
                return
            self._upgraded = True
            self._on_upgraded()
        frames, self._buf = codec.split_frames(buf)
        for opcode, _fin, payload in frames:
            if opcode == codec.OP_TEXT and payload:
                self._text(payload)
            elif opcode == codec.OP_CLOSE:
                self.abort()

    # --- what a protocol says (a subclass speaks another: Centrifugo's) ---------------------

    def _upgrade_request(self, host: str, port: int) -> bytes:
        return codec.upgrade_request(host, port, self.path, QUERY)

    def _on_upgraded(self) -> None:
        """The server said 101; Engine.IO's OPEN comes from the server, nothing to send."""

    def _text(self, payload: bytes) -> None:
        self._engineio(payload)

    def _in_session(self) -> None:
        """Ready: every room is resumed (or joined). Wakes the storm driver."""
        self._ready = self._settled = True
        self.ready_at = time.monotonic()
        self.session.set()
        self.on_ready(self)

    def _record(self, event_id: object) -> None:
        """One event's arrival: a new id, or a duplicate."""
        if isinstance(event_id, str):
            if event_id in self.received:
                self.duplicates += 1
            else:
                self.received.add(event_id)

    # --- Engine.IO / Socket.IO ------------------------------------------------------------

    def _engineio(self, payload: bytes) -> None:
        kind = payload[0]
        if kind == codec.EIO_MESSAGE and len(payload) > 2 and payload[1:3] == b"2[":
            self._event(payload[2:])
        elif kind == codec.EIO_PING:
            self._send(b"3")
        elif kind == codec.EIO_OPEN:
            auth: dict[str, Any] = {"token": self.token, **self.auth}
            if self.offsets:
                auth["since"] = dict(self.offsets)  # events name the client's own rooms
            self._send(codec.sio_connect(auth))
        elif kind == codec.EIO_MESSAGE and len(payload) > 1:
            self._packet(codec.parse_sio(payload[1:]))

    def _packet(self, packet: codec.SioPacket) -> None:
        if packet.kind != 4:
            return
        data = packet.data if isinstance(packet.data, dict) else {}
        if data.get("code") != "rate_limited":
            self._fail(f"refused:{data.get('code')}")
            return
        retry = float(data.get("retry_after") or 0.0)
        self.refusals.append(retry)
        self._not_before = time.monotonic() + retry
        self._settled = True
        self.abort()
        self.on_refused(self, retry)

    def _event(self, text: bytes) -> None:
        name, payload = orjson.loads(text)
        if not isinstance(payload, dict):
            return
        if name.endswith("_snapshot"):
            self.snapshots[name] = self.snapshots.get(name, 0) + len(text)
        if name == "session":
            if self.after_session:
                self._send(self.after_session)
            self.recovered = payload.get("recovered") or {}
            self._in_session()
            return
        room, offset = payload.get("room"), payload.get("offset")
        self._record(payload.get("event_id"))
        if isinstance(room, str) and isinstance(offset, str):
            self.offsets[room] = offset

    # --- helpers ------------------------------------------------------------------------

    def _send(self, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(codec.client_frame(payload))

    def _fail(self, error: str) -> None:
        self.errors.append(error)
        self._settled = True
        self.abort()
        self.on_failed(self, error)

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()
