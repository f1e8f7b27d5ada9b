"""A lean resuming client: thousands in one process, each one asyncio protocol (no task).

It speaks what a field client needs through a reconnect storm: the WebSocket
upgrade, Engine.IO open and pings, Socket.IO CONNECT with ``auth.since`` (the
last offset it saw in each of its automatic rooms: ``org`` and ``user:<sub>``),
``session`` (with the server's ``recovered`` answer), ``subscribe`` for the
rooms it asked for that the gateway did not join (the first time: all of
them), events, and the ``rate_limited`` refusal whose ``retry_after`` it
honours. It keeps the greatest offset it saw per room, whichever room an
event came through (``offsets``), resumes every room from it (``fleet``, which
keeps no history, with ``null``: its snapshot is the recovery), and records
every event id it received, so a run can count what was lost. The frames come from
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
#: Rooms without history: resumed with ``null`` (the gateway sends a snapshot).
NO_HISTORY = ("fleet",)


def _nothing(*_: object) -> None:
    return None


def _after(offset: str, than: str | None) -> bool:
    """Whether stream id ``offset`` (``<ms>-<seq>``) comes after ``than``."""
    if than is None:
        return True
    ms, _, seq = offset.partition("-")
    ms_then, _, seq_then = than.partition("-")
    return (int(ms), int(seq or 0)) > (int(ms_then), int(seq_then or 0))


class ResumingClient(asyncio.Protocol):
    """One field client; the storm driver decides where and when it (re)connects.

    ``on_ready`` fires when ``session`` arrives, ``on_lost`` when a ready
    connection ends, ``on_refused(client, retry_after)`` on ``rate_limited``,
    ``on_failed(client, error)`` when a connection ends before it was ready
    for any other reason (refused socket, HTTP error, timeout). With
    ``rooms``, ready means subscribed to every one of them too.
    """

    def __init__(
        self,
        index: int,
        token: str,
        *,
        path: str = "/ws",
        auth: dict[str, Any] | None = None,
        after_session: bytes = b"",
        rooms: tuple[str, ...] = (),
    ) -> None:
        self.index = index
        self.token = token
        #: Rooms besides the automatic ``org`` and ``user:<sub>`` (client names).
        self.rooms = rooms
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
        #: Subscribe acks that said no (code), over every connection.
        self.subscribe_refusals: list[str] = []
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
        self._unacked = 0  # subscribes sent in this session, not yet answered
        #: Rooms of this connection (an event's ``offsets`` name all its rooms').
        self._joined: set[str] = set()
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
            self._send(codec.sio_connect(self._auth()))
        elif kind == codec.EIO_MESSAGE and len(payload) > 1:
            self._packet(codec.parse_sio(payload[1:]))

    def _auth(self) -> dict[str, Any]:
        auth: dict[str, Any] = {"token": self.token, **self.auth}
        if self.offsets:  # a reconnect: every room it was in, from its offsets
            since: dict[str, str | None] = {r: None for r in self.rooms if r in NO_HISTORY}
            auth["since"] = since | dict(self.offsets)  # events name the client's own rooms
        return auth

    def _packet(self, packet: codec.SioPacket) -> None:
        if packet.kind == 3 and self._unacked:
            self._subscribed(packet.data)
            return
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
            self._session(payload)
        else:
            self._delivered(payload)

    def _session(self, payload: dict[str, Any]) -> None:
        if self.after_session:
            self._send(self.after_session)
        self.recovered = payload.get("recovered") or {}
        joined = set(payload.get("rooms") or ())
        missing = [room for room in self.rooms if room not in joined]
        self._joined = joined | set(self.rooms)
        self._unacked = len(missing)
        for ack_id, room in enumerate(missing):
            self._send(codec.sio_event("subscribe", {"room": room}, ack_id))
        if not missing:
            self._in_session()

    def _subscribed(self, data: object) -> None:
        ack = data[0] if isinstance(data, list) and data else {}
        if not (isinstance(ack, dict) and ack.get("ok")):
            error = ack.get("error") if isinstance(ack, dict) else None
            self.subscribe_refusals.append(str((error or {}).get("code")))
        self._unacked -= 1
        if not self._unacked:
            self._in_session()

    def _delivered(self, payload: dict[str, Any]) -> None:
        """An event: its id (lost and duplicates), the offsets it carries (the resume)."""
        self._record(payload.get("event_id"))
        offsets = payload.get("offsets")
        if not isinstance(offsets, dict):
            room, offset = payload.get("room"), payload.get("offset")
            offsets = {room: offset} if isinstance(room, str) else {}
        for room, offset in offsets.items():
            mine = room in self._joined
            if mine and isinstance(offset, str) and _after(offset, self.offsets.get(room)):
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
