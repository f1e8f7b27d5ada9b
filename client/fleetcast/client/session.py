"""One listening session: connect, subscribe, print, resume after a drop.

Everything here goes through the public client protocol (DESIGN.md): the
token in the Socket.IO ``auth`` payload, ``subscribe`` acks, events named by
their type, ``refresh`` before expiry. After any reconnect the rooms are
subscribed again with ``since`` = the last offset seen in each, so nothing
published during the gap is missed while the room's history still reaches.

Every event's ``offsets`` (its offset in each of its history rooms) moves
the client's position in each of its rooms, and a reconnect names them all in
the ``auth`` payload (``since``), so the gateway replays them together, each
missed event once; rooms it did not join that way are subscribed again.
``resync`` (events of some rooms may be missing) and ``access_changed`` (a
room taken away) are reported, as are state snapshots (``--state``).

Events of the types ``session.receipts`` names (alerts) are answered with
``receipt``: ``delivered`` and, once printed, ``displayed``; with
``--ack RESPONSE`` also ``acknowledged`` with that response.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import socketio

from fleetcast.client import output, summary

EXIT_OK: Final = 0
EXIT_REFUSED: Final = 3  # the server refused the connection (code printed)
EXIT_UNREACHABLE: Final = 4  # no Socket.IO server answered
EXIT_SUBSCRIBE_REFUSED: Final = 5  # connected, but at least one room was refused

#: Codes after which connecting again with the same token cannot succeed.
TERMINAL_CODES: Final = frozenset({"invalid_token", "token_expired", "forbidden", "revoked"})
#: Server events that are news about the session, not events of the domain.
NOTICES: Final = frozenset({"resync", "access_changed"})
CALL_TIMEOUT_S: Final = 10.0
RETRY_DEFAULT_S: Final = 1.0


class Sink(Protocol):
    """Where the session reports; :class:`fleetcast.client.output.Printer` in the CLI."""

    def event(self, name: str, payload: object, received_at: float) -> None: ...

    def status(self, kind: str, text: str, **fields: object) -> None: ...


class Signal(enum.Enum):
    CONNECTED = "connected"
    DROPPED = "dropped"  # the server closed the session; we reconnect ourselves
    REFUSED = "refused"  # a reconnect was refused for good
    STOP = "stop"
    RECEIPT = "receipt"  # a receipted event was printed: answer it


@dataclass(frozen=True, slots=True)
class Options:
    url: str
    token: Callable[[], str]
    path: str = "/ws"
    rooms: tuple[str, ...] = ()
    since: str | None = None
    #: Ask for the org's state snapshots at the first connect.
    state: bool = False
    duration_s: float | None = None
    max_events: int | None = None
    transports: tuple[str, ...] | None = None
    #: Send ``refresh`` with a fresh token this long before ``exp`` (only
    #: when tokens are minted locally; a pasted token cannot be renewed).
    refresh_margin_s: float | None = None
    expiry: Callable[[str], float | None] = field(default=lambda _token: None)
    #: Acknowledge every receipted event with this response (None: do not acknowledge).
    ack: str | None = None


def refusal(data: object) -> tuple[str, str, float | None]:
    """(code, message, retry-after seconds) from ``connect_error`` data, tolerantly."""
    if isinstance(data, Mapping):
        code = str(data.get("code", "error"))
        message = str(data.get("message", ""))
        hint = data.get("retry_after_ms", data.get("retry_after"))
        retry: float | None = None
        if isinstance(hint, int | float):
            retry = hint / 1000.0 if "retry_after_ms" in data else float(hint)
        return code, message, retry
    return "unreachable", str(data), None


class Listener:
    """Owns one AsyncClient for the length of a run; :meth:`run` returns an exit code."""

    def __init__(self, options: Options, sink: Sink, stats: summary.Summary) -> None:
        self._options = options
        self._sink = sink
        self._stats = stats
        self._signals: asyncio.Queue[tuple[Signal, object]] = asyncio.Queue()
        self._stopping = asyncio.Event()
        self._offsets: dict[str, tuple[int, int]] = {}
        self._first_subscribe = True
        self._first_connect = True
        #: Rooms the last session joined (auth since resumed them: no subscribe needed).
        self._joined: set[str] = set()
        self._manual_connect = False
        self._last_refusal: object = None
        self._closing: object = None  # the last disconnect_reason notice
        self._refused_rooms = 0
        #: Event types the gateway wants receipts for (from ``session``).
        self._receipted: frozenset[str] = frozenset()
        self._received = 0
        self._token = options.token()
        self._sio = socketio.AsyncClient(
            reconnection=True,
            reconnection_attempts=0,
            reconnection_delay=0.5,
            reconnection_delay_max=5,
        )
        self._sio.on("connect", self._on_connect)
        self._sio.on("connect_error", self._on_connect_error)
        self._sio.on("disconnect", self._on_disconnect)
        self._sio.on("*", self._on_event)

    def stop(self) -> None:
        """Ask :meth:`run` to finish (signal handlers, tests), even while it waits to connect."""
        self._stopping.set()
        self._signals.put_nowait((Signal.STOP, None))

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        deadline = (
            None if self._options.duration_s is None else loop.time() + self._options.duration_s
        )
        try:
            code = await self._connect(deadline)
            if code is not None:
                return code
            code = await self._serve(deadline)
        finally:
            await self._sio.shutdown()
        if code == EXIT_OK and self._refused_rooms:
            return EXIT_SUBSCRIBE_REFUSED
        return code

    # --- the loop ---------------------------------------------------------------

    async def _serve(self, deadline: float | None) -> int:
        loop = asyncio.get_running_loop()
        while True:
            wake = self._next_wake(deadline, loop.time())
            try:
                signal, detail = await asyncio.wait_for(self._signals.get(), wake)
            except TimeoutError:
                if deadline is not None and loop.time() >= deadline:
                    return EXIT_OK
                await self._refresh()
                continue
            if signal is Signal.CONNECTED:
                await self._subscribe_all()
            elif signal is Signal.DROPPED:
                if self._closed_for_good():
                    return self._report_refusal(self._closing)
                code = await self._connect(deadline)
                if code is not None:
                    return code
            elif signal is Signal.RECEIPT:
                await self._answer(str(detail))
            elif signal is Signal.REFUSED:
                return self._report_refusal(detail)
            else:
                return EXIT_OK

    def _closed_for_good(self) -> bool:
        """The server said why it closed, and the same token cannot get back in."""
        code, _message, _retry = refusal(self._closing)
        self._closing = None
        minted = self._options.refresh_margin_s is not None
        return code in TERMINAL_CODES and not minted

    def _next_wake(self, deadline: float | None, now: float) -> float | None:
        wakes = [] if deadline is None else [deadline - now]
        margin = self._options.refresh_margin_s
        expires = self._options.expiry(self._token)
        if margin is not None and expires is not None:
            wakes.append(expires - margin - time.time())
        return max(0.0, min(wakes)) if wakes else None

    async def _connect(self, deadline: float | None) -> int | None:
        """Connect (again), waiting out ``rate_limited`` refusals; None when connected."""
        loop = asyncio.get_running_loop()
        self._manual_connect = True
        try:
            while True:
                self._last_refusal = None
                try:
                    await self._sio.connect(
                        self._options.url,
                        auth=self._auth,
                        transports=list(self._options.transports)
                        if self._options.transports
                        else None,
                        socketio_path=self._options.path,
                        wait_timeout=CALL_TIMEOUT_S,
                    )
                    return None
                except socketio.exceptions.ConnectionError as exc:
                    code, message, retry = refusal(self._last_refusal or str(exc))
                if code != "rate_limited" or (deadline is not None and loop.time() >= deadline):
                    return self._report_refusal(self._last_refusal or message)
                self._sink.status(
                    "rate_limited", f"server busy, retrying in {retry or RETRY_DEFAULT_S:.1f}s"
                )
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), retry or RETRY_DEFAULT_S)
                if self._stopping.is_set():
                    return EXIT_OK
        finally:
            self._manual_connect = False

    def _report_refusal(self, data: object) -> int:
        code, message, _retry = refusal(data)
        if code == "unreachable":
            self._sink.status("error", f"cannot connect to {self._options.url}: {message}")
            return EXIT_UNREACHABLE
        self._sink.status("refused", f"connection refused: {code}: {message}", code=code)
        return EXIT_REFUSED

    async def _auth(self) -> dict[str, Any]:
        """The auth payload of every (re)connect: a fresh token, every room's last offset."""
        self._token = self._options.token()
        payload: dict[str, Any] = {"token": self._token}
        if self._offsets:
            payload["since"] = {room: f"{ms}-{seq}" for room, (ms, seq) in self._offsets.items()}
        if self._options.state and self._first_connect:
            payload["state"] = True
        self._first_connect = False
        return payload

    async def _refresh(self) -> None:
        if self._options.refresh_margin_s is None or not self._sio.connected:
            return
        self._token = self._options.token()
        try:
            ack = await self._sio.call("refresh", {"token": self._token}, timeout=CALL_TIMEOUT_S)
        except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
            self._sink.status("error", "refresh: no answer (the next reconnect uses a new token)")
            return
        self._sink.status("refresh", f"token refreshed: {ack}", ack=ack)

    # --- rooms ------------------------------------------------------------------------

    async def _subscribe_all(self) -> None:
        since = self._options.since if self._first_subscribe else None
        self._first_subscribe = False
        for room in self._options.rooms:
            if room in self._joined:  # resumed at connect (auth since)
                continue
            request: dict[str, Any] = {"room": room}
            offset = self._offsets.get(room)
            resume = f"{offset[0]}-{offset[1]}" if offset is not None else since
            if resume is not None:
                request["since"] = resume
            try:
                ack = await self._sio.call("subscribe", request, timeout=CALL_TIMEOUT_S)
            except (socketio.exceptions.TimeoutError, socketio.exceptions.BadNamespaceError):
                self._sink.status("error", f"subscribe {room}: no answer (connection lost?)")
                return
            self._report_ack(room, ack)

    def _report_ack(self, room: str, ack: object) -> None:
        answer = ack if isinstance(ack, Mapping) else {}
        if answer.get("ok"):
            recovered = answer.get("recovered")
            note = "" if recovered is None else f" (recovered: {str(recovered).lower()})"
            self._sink.status("subscribed", f"{room}{note}", room=room, ack=answer)
            return
        self._refused_rooms += 1
        error = answer.get("error")
        if not isinstance(error, Mapping):
            error = {}
        code = str(error.get("code", "error"))
        self._sink.status(
            "refused",
            f"subscribe {room}: {code}: {error.get('message', ack)}",
            room=room,
            code=code,
        )

    async def _answer(self, delivery_id: str) -> None:
        """delivered, displayed (it was printed), and acknowledged when asked to."""
        kinds: list[dict[str, Any]] = [{"kind": "delivered"}, {"kind": "displayed"}]
        if self._options.ack is not None:
            kinds.append({"kind": "acknowledged", "response": self._options.ack})
        for receipt in kinds:
            try:
                ack = await self._sio.call(
                    "receipt", {"delivery_id": delivery_id, **receipt}, timeout=CALL_TIMEOUT_S
                )
            except (socketio.exceptions.SocketIOError, TimeoutError) as exc:
                ack = {"ok": False, "error": {"code": "unanswered", "message": repr(exc)}}
            if not (isinstance(ack, Mapping) and ack.get("ok")):
                error = ack.get("error") if isinstance(ack, Mapping) else None
                code = error.get("code") if isinstance(error, Mapping) else "error"
                self._sink.status("receipt", f"receipt {receipt['kind']} refused: {code}")
                return

    def _track(self, payload: Mapping[str, Any]) -> None:
        """Move the position in every room of ours the event names (``offsets``, or ``room``)."""
        positions = payload.get("offsets")
        if not isinstance(positions, Mapping):
            positions = {payload.get("room"): payload.get("offset")}
        mine = {*self._options.rooms, *self._joined}
        for room, text in positions.items():
            offset = _offset(text)
            if room in mine and offset is not None and offset > self._offsets.get(room, (0, 0)):
                self._offsets[room] = offset

    # --- Socket.IO handlers (plain functions: they run in arrival order) ----------------

    def _on_connect(self) -> None:
        self._sink.status(
            "connected", f"connected to {self._options.url} (sid {self._sio.get_sid()})"
        )

    def _on_connect_error(self, data: object = None) -> None:
        self._last_refusal = data
        if self._manual_connect:
            return
        code, message, _retry = refusal(data)
        if code in TERMINAL_CODES:
            self._signals.put_nowait((Signal.REFUSED, data))
        else:
            self._sink.status("reconnecting", f"reconnect refused: {code}: {message}")

    def _on_disconnect(self, reason: str = "") -> None:
        if reason == self._sio.reason.SERVER_DISCONNECT:
            self._sink.status("disconnected", "the server closed the session; reconnecting")
            self._signals.put_nowait((Signal.DROPPED, None))
        elif reason != self._sio.reason.CLIENT_DISCONNECT:
            self._sink.status("disconnected", f"connection lost ({reason}); reconnecting")

    def _on_event(self, name: str, payload: object = None) -> None:
        received_at = time.time()
        if name == "session":
            rooms = payload.get("rooms") if isinstance(payload, Mapping) else None
            self._joined = set(rooms) if isinstance(rooms, list) else set()
            wanted = payload.get("receipts") if isinstance(payload, Mapping) else None
            self._receipted = frozenset(wanted) if isinstance(wanted, list) else frozenset()
            self._sink.status("session", output.session_text(payload), session=payload)
            # the rooms it did not join at connect are subscribed now (session comes first)
            self._signals.put_nowait((Signal.CONNECTED, None))
            return
        if name in NOTICES and isinstance(payload, Mapping):
            rooms = ", ".join(str(r) for r in payload.get("rooms") or ())
            self._sink.status(name, f"{name}: {rooms} ({payload.get('reason')})", notice=payload)
            return
        if name == "disconnect_reason":
            self._closing = payload
            code, message, _retry = refusal(payload)
            self._sink.status("closing", f"the server is closing: {code}: {message}", code=code)
            return
        if isinstance(payload, Mapping):
            self._track(payload)
        self._stats.record(name, payload, received_at)
        self._sink.event(name, payload, received_at)
        if name in self._receipted and isinstance(payload, Mapping):
            self._signals.put_nowait((Signal.RECEIPT, payload.get("event_id")))
        self._received += 1
        if self._options.max_events is not None and self._received >= self._options.max_events:
            self._signals.put_nowait((Signal.STOP, None))


def _offset(text: object) -> tuple[int, int] | None:
    """``"<ms>-<seq>"`` as a pair to compare, or None."""
    if not isinstance(text, str):
        return None
    ms, _, seq = text.partition("-")
    return (int(ms), int(seq)) if ms.isdigit() and seq.isdigit() else None
