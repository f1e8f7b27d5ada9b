"""python-socketio and python-engineio, with lean Engine.IO sockets underneath.

The protocol logic stays python-engineio's and python-socketio's (handshake,
long-polling, upgrade, packets, namespaces, acks): standard clients see no
difference. What changes is what each connection costs while idle and per
message:

- its queue is an :class:`~fleetcast.gateway.transport.outlet.Outlet` that writes
  websocket frames straight to the transport (no writer task, no
  ``asyncio.Queue``, no task switch per message);
- once aiohttp has answered its websocket upgrade, a small protocol object
  (:class:`~fleetcast.gateway.transport.wslink.WebSocketLink`) reads it instead of
  aiohttp's handler, parser and tasks (python-engineio also wraps every read
  in a new task and a ``wait_for``); permessage-deflate is never negotiated,
  so the same frame bytes can go to every client;
- its PINGs and ping timeouts come from one
  :class:`~fleetcast.gateway.transport.heartbeat.Heartbeat` for all sockets
  (python-engineio has a task per socket plus a service task);
- python-socketio keeps only the request keys the gateway reads, not the
  whole environ (which holds the aiohttp request) for the connection's life,
  and a disconnect no longer scans every room (:class:`LeanManager`).

Everything here leans on python-engineio internals (``sockets``,
``create_queue``, ``_upgrade_websocket``, ``schedule_ping``) and wslink.py on
aiohttp's, so the versions are pinned in uv.lock and the integration tests run standard clients over
both transports.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, Final

import engineio
import socketio
import structlog
from aiohttp import web
from engineio import async_socket
from engineio import packet as eio_packet

from fleetcast.gateway.transport import guard, wslink
from fleetcast.gateway.transport.heartbeat import Heartbeat
from fleetcast.gateway.transport.outlet import Outlet

log = structlog.stdlib.get_logger(__name__)

#: Starts a task owned by the gateway's task owner: (coroutine, name).
Spawn = Callable[[Coroutine[Any, Any, Any], str], object]

#: The request keys the gateway's handlers read (auth.extract_token); the rest is dropped.
KEPT_ENVIRON: Final = ("HTTP_AUTHORIZATION", "QUERY_STRING", "REMOTE_ADDR", "HTTP_ORIGIN")


class LeanSocket(async_socket.AsyncSocket):  # type: ignore[misc]
    """An Engine.IO socket with an Outlet for a queue, a shared heartbeat and a lean websocket."""

    queue: Outlet
    server: LeanEngineIO
    sid: str
    last_ping: float | None
    connected: bool
    upgrading: bool
    upgraded: bool
    #: What this client may still send (transport/guard.py); set when the socket is stored.
    guard: guard.Guard

    async def receive(self, pkt: eio_packet.Packet) -> None:
        """Every client message passes its guard first (websocket and long-polling come here)."""
        if pkt.packet_type == eio_packet.MESSAGE and not self.server.guards.admit(
            self.sid, self.guard, pkt.data
        ):
            return
        await super().receive(pkt)

    def schedule_ping(self) -> None:
        if self.last_ping:
            self.last_ping = None
            self.server.heartbeat.schedule(self)

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        self.server.spawn(coro)

    async def _upgrade_websocket(self, environ: dict[str, Any]) -> web.StreamResponse:
        """aiohttp answers the handshake; then a WebSocketLink owns the connection."""
        if self.upgraded:
            raise OSError("Socket has been upgraded already")
        request: web.Request = environ["aiohttp.request"]
        ws = wslink.Detached(compress=False)  # no permessage-deflate: frames are shared as is
        try:
            await ws.prepare(request)
        except ConnectionError:
            return await self._gone_before_upgrade(ws)
        # python-engineio's frames hold this environ until the handler returns
        # (now), and nothing reads it after the upgrade.
        environ.clear()
        transport = request.transport
        assert transport is not None
        probe = bool(self.connected)  # from long-polling: the probe comes first
        link = wslink.WebSocketLink(
            self, transport, max_size=self.server.max_http_buffer_size, probe=probe
        )
        wslink.hand_over(request, link)
        if probe:
            self.upgrading = True
        else:
            self.connected = self.upgraded = True
            self.queue.attach(transport)
        return ws

    async def _gone_before_upgrade(self, ws: wslink.Detached) -> web.StreamResponse:
        """The client closed before its upgrade was answered: end the session, quietly.

        In a storm that is every attempt a client gave up on while it waited
        in a lagging loop. Raised out of the handler, aiohttp would log the
        error with its traceback (measured: ~1.5 ms of CPU each, a fifth of a
        gateway's CPU in a 5,000-client resume storm); ``ws`` is returned
        instead: aiohttp sees it prepared and ``Detached`` writes no EOF.
        """
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        self.server.forget(self)
        return ws

    async def websocket_closed(self) -> None:
        """The link lost its transport: the Engine.IO session ends (``transport close``)."""
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        self.server.forget(self)


class _SocketTable(dict[str, Any]):
    """python-engineio's ``sockets``; new sockets become :class:`LeanSocket` as they are stored.

    Each gets its guard, and its Outlet a bound on what it may leave unread.
    """

    def __init__(self, server: LeanEngineIO) -> None:
        super().__init__()
        self._server = server

    def __setitem__(self, sid: str, sock: Any) -> None:
        if type(sock) is async_socket.AsyncSocket:
            sock.__class__ = LeanSocket
            server = self._server
            sock.guard = server.guards.new()
            sock.queue.bound(server.guards.limits.max_unsent_bytes, server.overflowed, sid)
        super().__setitem__(sid, sock)


class LeanEngineIO(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server with Outlets for queues and one heartbeat (no service task)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["monitor_clients"] = False  # the heartbeat detects silent clients
        super().__init__(**kwargs)
        self.sockets = _SocketTable(self)
        self.heartbeat = Heartbeat(self.ping_interval, self.ping_timeout, self._timed_out)
        self._spawn: Spawn | None = None
        #: Replaced by the composition root's (use_guards), which cut clients off with a reason.
        self.guards = guard.Guards(guard.Limits(), self._abort_later)

    def use_tasks(self, spawn: Spawn) -> None:
        """Where packet handlers and socket closes run: the gateway's task owner (common.tasks)."""
        self._spawn = spawn

    def use_guards(self, guards: guard.Guards) -> None:
        """The limits every client's packets are held to, and who cuts off those that break them."""
        self.guards = guards

    def create_queue(self, *args: Any, **kwargs: Any) -> Outlet:
        return Outlet()

    def start_background_task(self, target: Any, *args: Any, **kwargs: Any) -> Any:
        """Every task python-engineio and python-socketio start is owned by the gateway's owner."""
        assert self._spawn is not None, "use_tasks() is called by the composition root"
        return self._spawn(target(*args, **kwargs), "engineio")

    def overflowed(self, eio_sid: str) -> None:
        """A client left more unread than it may (its Outlet says): cut it off."""
        sock = self.sockets.get(eio_sid)
        if sock is not None:
            self.guards.violation(eio_sid, sock.guard, guard.SLOW_CONSUMER, "unread output")

    def _abort_later(self, eio_sid: str, code: str) -> None:
        self.spawn(self.abort(eio_sid))

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run one packet's handling (or a socket's close) in a task of the gateway's owner."""
        assert self._spawn is not None, "use_tasks() is called by the composition root"
        self._spawn(coro, "engineio")

    def outlet(self, eio_sid: str) -> Outlet | None:
        """The Outlet of a live socket (its queue), or None once it is gone."""
        sock = self.sockets.get(eio_sid)
        queue = None if sock is None else sock.queue
        return queue if isinstance(queue, Outlet) else None

    async def abort(self, eio_sid: str) -> None:
        """End a session without a CLOSE packet; the disconnect handlers run."""
        sock = self.sockets.get(eio_sid)
        if sock is not None:
            await sock.close(wait=False, abort=True, reason=self.reason.SERVER_DISCONNECT)

    def forget(self, sock: LeanSocket) -> None:
        sockets: dict[str, Any] = self.sockets
        if sock.closed and sockets.get(sock.sid) is sock:
            del sockets[sock.sid]

    def close_websockets(self) -> None:
        """Shut-down: close every websocket (aiohttp no longer knows them)."""
        for sock in list(self.sockets.values()):
            sock.queue.shut()

    async def _timed_out(self, sock: LeanSocket) -> None:
        log.info("engine.io client gone (ping timeout)", sid=sock.sid)
        # abort=False: a CLOSE packet tells a half-open client it was dropped
        await sock.close(wait=False, abort=False, reason=self.reason.PING_TIMEOUT)
        self.forget(sock)


class LeanManager(socketio.AsyncManager):  # type: ignore[misc]
    """python-socketio's manager without its O(rooms) disconnect.

    python-socketio finds a leaving client's rooms by scanning every room of
    the namespace, and every client has a room of its own: a disconnect
    costs O(clients), a drain or reconnect storm of 10,000 clients O(n^2)
    (seconds of CPU). A gateway connection is only ever in the namespace
    room and its own sid room (rooms live in registry.Registry), so those
    two are all a disconnect has to leave; entering any other room is refused.
    """

    def basic_enter_room(
        self, sid: str, namespace: str, room: str | None, eio_sid: str | None = None
    ) -> None:
        if room is not None and room != sid:
            raise ValueError("fleetcast keeps its rooms in registry.Registry, not python-socketio")
        super().basic_enter_room(sid, namespace, room, eio_sid=eio_sid)

    def basic_disconnect(self, sid: str, namespace: str, **kwargs: Any) -> None:
        rooms = self.rooms.get(namespace)
        if rooms is None:
            return
        for room in (sid, None):
            if sid in rooms.get(room, ()):
                self.basic_leave_room(sid, namespace, room)
        self.callbacks.pop(sid, None)
        for pending in (self.pending_connect, self.pending_disconnect):
            waiting = pending.get(namespace)
            if waiting and sid in waiting:
                waiting.remove(sid)
                if not waiting:
                    del pending[namespace]


class LeanSocketIO(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server on :class:`LeanEngineIO`, keeping a small environ per client."""

    eio: LeanEngineIO

    def _engineio_server_class(self) -> type[LeanEngineIO]:
        return LeanEngineIO

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        kept = {key: environ[key] for key in KEPT_ENVIRON if key in environ}
        return await super()._handle_eio_connect(eio_sid, kept)

    async def _handle_eio_message(self, eio_sid: str, data: Any) -> None:
        """python-socketio's, with what it cannot read counted against the client, not logged."""
        sock = self.eio.sockets.get(eio_sid)
        try:
            await super()._handle_eio_message(eio_sid, data)
        except Exception as exc:  # a packet python-socketio could not read (or a handler refused)
            if sock is not None:
                self.eio.guards.protocol_error(eio_sid, sock.guard, exc)
        finally:
            if sock is not None and isinstance(data, str) and data[:1] == guard.REQUEST_TYPE:
                sock.guard.in_flight -= 1

    async def _handle_event(self, eio_sid: str, namespace: str | None, id: Any, data: Any) -> None:
        """python-socketio's, but the handler runs in this packet's task (already its own),
        so a request costs one task, and the guard's in-flight count covers it until done."""
        namespace = namespace or "/"
        sid = self.manager.sid_from_eio_sid(eio_sid, namespace)
        if self.manager.is_connected(sid, namespace):
            await self._handle_event_internal(self, sid, eio_sid, data, namespace, id)
