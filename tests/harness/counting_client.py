"""A counting client: python-socketio's AsyncClient speaking the resume protocol.

It does what a dispatch console or a field app must do to miss nothing:

- tracks, per room, the greatest offset it has seen (offsets compared as
  ``(ms, seq)`` integer pairs), from the ``offsets`` map of each event
  ({room -> offset} for every history room of the event) or, from a gateway
  that does not send it yet, from the event's ``room`` and ``offset``;
- when a connection ends for any reason (``disconnect_reason`` first or not),
  reconnects by itself to the next gateway of its list, resuming every room
  in ``auth.since``; rooms the gateway did not join at connect are
  subscribed again with ``since``;
- records, in a :class:`tests.harness.counting.Record`, every delivery and
  every gap the server announced: a ``resync`` event, or ``recovered: false``
  in ``session`` or in a subscribe ack.

Every wait is bounded; the reconnect task is owned by the client and ends
with :meth:`CountingClient.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

import socketio

from fleetcast.protocol import events, rooms
from tests.harness.counting import Record
from tests.harness.gateway_process import make_token

#: Longest wait for one connect, session or ack.
STEP_TIMEOUT_S: Final = 5.0
#: Backoff between reconnect attempts: first, cap (seconds; jittered).
BACKOFF_S: Final = (0.05, 1.0)
SUBSCRIBE_TRIES: Final = 5
#: Tries of the first connection (start) before the stack gives up.
START_TRIES: Final = 4
#: A run lasts a few minutes at most; a short lifetime stays within any maximum.
TOKEN_TTL_S: Final = 600.0

Offset = tuple[int, int]


def parse_offset(text: object) -> Offset | None:
    """``"1732550400000-3"`` -> ``(1732550400000, 3)``; None for anything else."""
    if not isinstance(text, str):
        return None
    ms, sep, seq = text.partition("-")
    if not sep or not ms.isdigit() or not seq.isdigit():
        return None
    return int(ms), int(seq)


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """Who a counting client is, which rooms it is in, which gateway it tries first."""

    name: str
    user: str
    org: str
    roles: tuple[str, ...]
    #: Rooms besides the automatic ``org`` and ``user:<user>`` (client-facing names).
    extra_rooms: tuple[str, ...]
    home: int = 0
    #: Token lists of a field unit (the rooms its role may join).
    channels: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()

    @property
    def rooms(self) -> tuple[str, ...]:
        return ("org", f"user:{self.user}", *self.extra_rooms)

    def full_name(self, client_room: str) -> str:
        return rooms.parse_client_room(client_room, self.org).name

    def token(self) -> str:
        lists: dict[str, Any] = {}
        if self.channels:
            lists["channels"] = list(self.channels)
        if self.assets:
            lists["assets"] = list(self.assets)
        return make_token(self.user, self.org, self.roles, ttl=TOKEN_TTL_S, **lists)


class CountingClient:
    """One logical client across as many connections as it takes."""

    def __init__(
        self, spec: ClientSpec, urls: Sequence[str], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.spec = spec
        self.urls = list(urls)
        self.record = Record(spec.name, frozenset(spec.full_name(r) for r in spec.rooms))
        self.offsets: dict[str, Offset] = {}
        self.notices: list[Any] = []
        self._clock = clock
        self._token = spec.token()
        self._gateway = spec.home % len(self.urls)
        self._sio: socketio.AsyncClient | None = None
        self._made: list[socketio.AsyncClient] = []
        self._lost = asyncio.Event()
        self._closing = False
        self._task: asyncio.Task[None] | None = None
        self._last_failure = ""

    @property
    def connected(self) -> bool:
        return self._sio is not None and bool(self._sio.connected)

    @property
    def gateway(self) -> str:
        return self.urls[self._gateway]

    def missing_offsets(self) -> list[str]:
        """Rooms this client could not resume yet (no event of theirs seen)."""
        return [room for room in self.spec.rooms if room not in self.offsets]

    async def start(self) -> None:
        """First connection to the home gateway, in every room; then armed.

        A few tries: the whole stack's clients connect at once, and on a busy
        machine one handshake can miss its step timeout without anything wrong.
        """
        delay = BACKOFF_S[0]
        for _ in range(START_TRIES):
            if await self._attempt(self.gateway, resuming=False):
                break
            await asyncio.sleep(delay)
            delay = min(BACKOFF_S[1], delay * 2)
        else:
            raise AssertionError(
                f"{self.spec.name}: cannot connect to {self.gateway} in {START_TRIES} tries"
                f" (last: {self._last_failure}; refusals: {self.record.connect_refusals[-3:]})"
            )
        self.record.armed_at = self._clock()
        self._task = asyncio.create_task(self._keep_connected(), name=f"client-{self.spec.name}")

    async def close(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for sio in self._made:
            with contextlib.suppress(Exception):
                await sio.disconnect()
            await sio.shutdown()

    # --- connections -----------------------------------------------------------------

    async def _keep_connected(self) -> None:
        while not self._closing:
            await self._lost.wait()
            self._lost.clear()
            if not self.connected:
                await self._reconnect()

    async def _reconnect(self) -> None:
        """The next gateway, then the next, with a jittered backoff, until one takes us."""
        delay = BACKOFF_S[0]
        while not self._closing:
            self._gateway = (self._gateway + 1) % len(self.urls)
            if await self._attempt(self.gateway, resuming=True):
                self.record.reconnects.append((self._clock(), self.gateway))
                return
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(BACKOFF_S[1], delay * 2)

    async def _attempt(self, url: str, *, resuming: bool) -> bool:
        session: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        sio = self._new_sio(session)
        self._sio = sio
        try:
            await sio.connect(
                url,
                socketio_path="/ws",
                auth=self._auth(resuming),
                transports=["websocket"],
                wait_timeout=STEP_TIMEOUT_S,
            )
            async with asyncio.timeout(STEP_TIMEOUT_S):
                info = await session
                await self._join(sio, info)
        except Exception as exc:  # any failure is one failed attempt; the next may succeed
            self._last_failure = repr(exc)
            if not isinstance(exc, socketio.exceptions.SocketIOError | TimeoutError | OSError):
                self.record.errors.append(f"attempt failed: {exc!r}")
            self._sio = None
            with contextlib.suppress(Exception):
                await sio.disconnect()
            return False
        return True

    def _new_sio(self, session: asyncio.Future[dict[str, Any]]) -> socketio.AsyncClient:
        sio = socketio.AsyncClient(reconnection=False)
        self._made.append(sio)

        async def on_any(event: str, *args: Any) -> None:
            self._on_event(event, args[0] if len(args) == 1 else args, session)

        async def on_disconnect(reason: Any = None) -> None:
            self.record.disconnects.append((self._clock(), str(reason)))
            if sio is self._sio and not self._closing:
                self._lost.set()

        async def on_connect_error(data: Any = None) -> None:
            self.record.connect_refusals.append(str(data))

        sio.on("*", on_any)
        sio.on("disconnect", on_disconnect)
        sio.on("connect_error", on_connect_error)
        return sio

    def _auth(self, resuming: bool) -> dict[str, Any]:
        auth: dict[str, Any] = {"token": self._token}
        if not resuming:
            return auth
        now = self._clock()
        for room in self.missing_offsets():
            self.record.blind(self.spec.full_name(room), now)
        auth["since"] = {room: f"{ms}-{seq}" for room, (ms, seq) in self.offsets.items()}
        return auth

    async def _join(self, sio: socketio.AsyncClient, info: dict[str, Any]) -> None:
        """Take the resume answers of ``session``; subscribe to the rooms it did not join."""
        now = self._clock()
        for room, ok in (info.get("recovered") or {}).items():
            if ok is False:
                self._gap(room, now)
        refused = info.get("refused") or {}
        for room, reason in refused.items():
            self.record.refusals.append(f"{room}: {reason}")
        joined = set(info.get("rooms") or ())
        for room in self.spec.rooms:
            if room not in joined and room not in refused:
                await self._subscribe(sio, room)

    async def _subscribe(self, sio: socketio.AsyncClient, room: str) -> None:
        request: dict[str, Any] = {"room": room}
        if room in self.offsets:
            ms, seq = self.offsets[room]
            request["since"] = f"{ms}-{seq}"
        for _ in range(SUBSCRIBE_TRIES):
            ack = await sio.call("subscribe", request, timeout=STEP_TIMEOUT_S)
            ack = ack if isinstance(ack, dict) else {"error": f"not an ack: {ack!r}"}
            if ack.get("ok"):
                if ack.get("recovered") is False:
                    self._gap(room, self._clock())
                return
            retry = (ack.get("error") or {}).get("retry_after")
            if retry is None:
                break
            await asyncio.sleep(float(retry))
        self.record.refusals.append(f"subscribe {room}: {ack.get('error')}")

    # --- what arrives --------------------------------------------------------------------

    def _on_event(self, name: str, data: Any, session: asyncio.Future[dict[str, Any]]) -> None:
        now = self._clock()
        if name == "session":
            if not session.done() and isinstance(data, dict):
                session.set_result(data)
        elif name == "resync" and isinstance(data, dict):
            self.record.resyncs += 1
            if data.get("recovered") is not True:
                for room in data.get("rooms") or ():
                    self._gap(room, now)
        elif name == "disconnect_reason":
            self.notices.append(data)
        elif name in events.EVENT_TYPES and isinstance(data, dict):
            self.record.deliver(str(data.get("event_id")), now, str(data.get("room")))
            self._track(data)

    def _track(self, payload: dict[str, Any]) -> None:
        positions = payload.get("offsets")
        if not isinstance(positions, dict):
            positions = {payload.get("room"): payload.get("offset")}
        for room, text in positions.items():
            offset = parse_offset(text)
            if (
                room in self.spec.rooms  # `offsets` names every history room of the event
                and offset is not None
                and offset > self.offsets.get(room, (0, 0))
            ):
                self.offsets[room] = offset

    def _gap(self, room: object, at: float) -> None:
        try:
            full = self.spec.full_name(str(room))
        except rooms.RoomError:
            return
        self.record.announce(full, at)
