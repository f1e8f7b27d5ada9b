"""python-socketio and python-engineio, with lean Engine.IO sockets underneath.

The protocol logic stays python-engineio's and python-socketio's (handshake,
long-polling, upgrade, packets, namespaces, acks): standard clients see no
difference. What changes is what each connection costs while idle and per
message:

- its queue is an :class:`~fleetcast.gateway.outlet.Outlet` that writes
  websocket frames straight to the transport (no writer task, no
  ``asyncio.Queue``, no task switch per message);
- its websocket is read by one plain loop (python-engineio wraps every read
  in a new task and a ``wait_for``), and never negotiates permessage-deflate,
  so the same frame bytes can go to every client;
- its PINGs and ping timeouts come from one :class:`~fleetcast.gateway.heartbeat.Heartbeat`
  for all sockets (python-engineio has a task per socket plus a service task);
- python-socketio keeps only the request keys the gateway reads, not the
  whole environ (which holds the aiohttp request) for the connection's life.

Everything here leans on python-engineio internals (``sockets``,
``create_queue``, ``_upgrade_websocket``, ``schedule_ping``), so the versions
are pinned in uv.lock and the integration tests run standard clients over
both transports.
"""

from __future__ import annotations

from typing import Any, Final

import engineio
import socketio
import structlog
from aiohttp import WSMsgType, web
from engineio import async_socket, exceptions
from engineio import packet as eio_packet

from fleetcast.gateway.heartbeat import Heartbeat
from fleetcast.gateway.outlet import Outlet

log = structlog.stdlib.get_logger(__name__)

#: The request keys the gateway's handlers read (auth.extract_token); the rest is dropped.
KEPT_ENVIRON: Final = ("HTTP_AUTHORIZATION", "QUERY_STRING", "REMOTE_ADDR", "HTTP_ORIGIN")
_DATA_MESSAGES: Final = (WSMsgType.TEXT, WSMsgType.BINARY)


class LeanSocket(async_socket.AsyncSocket):  # type: ignore[misc]
    """An Engine.IO socket whose queue is an Outlet and whose heartbeat is shared."""

    queue: Outlet
    server: LeanEngineIO
    sid: str
    last_ping: float | None
    connected: bool
    upgrading: bool
    upgraded: bool

    def schedule_ping(self) -> None:
        if self.last_ping:
            self.last_ping = None
            self.server.heartbeat.schedule(self)

    async def _upgrade_websocket(self, environ: dict[str, Any]) -> web.WebSocketResponse:
        if self.upgraded:
            raise OSError("Socket has been upgraded already")
        request: web.Request = environ["aiohttp.request"]
        ws = web.WebSocketResponse(max_msg_size=self.server.max_http_buffer_size, compress=False)
        await ws.prepare(request)
        # python-engineio's frames hold this request's environ for the
        # websocket's whole life, and nothing reads it after the upgrade
        # (python-socketio kept its own small copy at connect): ~1 KB each.
        environ.clear()
        if self.connected:  # upgrading from long-polling
            if not await self._probe(ws):
                return ws
        else:
            self.connected = self.upgraded = True
        assert request.transport is not None
        self.queue.attach(request.transport)
        try:
            await self._read(ws)
        finally:
            self.queue.shut()
        await self.close(wait=False, abort=True, reason=self.server.reason.TRANSPORT_CLOSE)
        return ws

    async def _probe(self, ws: web.WebSocketResponse) -> bool:
        """Engine.IO upgrade: ``2probe`` -> ``3probe``, end the pending poll, then ``5``."""
        self.upgrading = True
        try:
            if _packet(await ws.receive()) != (eio_packet.PING, "probe"):
                return False
            await ws.send_str(eio_packet.Packet(eio_packet.PONG, data="probe").encode())
            self.queue.put_nowait(eio_packet.Packet(eio_packet.NOOP))
            upgrade = _packet(await ws.receive())
            if upgrade is None or upgrade[0] != eio_packet.UPGRADE:
                return False
            self.upgraded = True
            return True
        finally:
            self.upgrading = False

    async def _read(self, ws: web.WebSocketResponse) -> None:
        """Hand every client packet to python-engineio until the websocket ends."""
        while True:
            msg = await ws.receive()
            if msg.type not in _DATA_MESSAGES:
                return
            try:
                pkt = eio_packet.Packet(encoded_packet=msg.data)
            except Exception:  # not an Engine.IO packet: the client is broken
                log.info("unreadable engine.io packet", sid=self.sid)
                return
            try:
                await self.receive(pkt)
            except exceptions.UnknownPacketError:
                pass
            except exceptions.SocketIsClosedError:
                return
            except Exception:
                log.exception("engine.io receive failed", sid=self.sid)


def _packet(msg: Any) -> tuple[int, Any] | None:
    if msg.type is not WSMsgType.TEXT:
        return None
    try:
        pkt = eio_packet.Packet(encoded_packet=msg.data)
    except Exception:
        return None
    return pkt.packet_type, pkt.data


class _SocketTable(dict[str, Any]):
    """python-engineio's ``sockets``; new sockets become :class:`LeanSocket` as they are stored."""

    def __setitem__(self, sid: str, sock: Any) -> None:
        if type(sock) is async_socket.AsyncSocket:
            sock.__class__ = LeanSocket
        super().__setitem__(sid, sock)


class LeanEngineIO(engineio.AsyncServer):  # type: ignore[misc]
    """python-engineio's server with Outlets for queues and one heartbeat (no service task)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs["monitor_clients"] = False  # the heartbeat detects silent clients
        super().__init__(**kwargs)
        self.sockets = _SocketTable()
        self.heartbeat = Heartbeat(self.ping_interval, self.ping_timeout, self._timed_out)

    def create_queue(self, *args: Any, **kwargs: Any) -> Outlet:
        return Outlet()

    async def _timed_out(self, sock: LeanSocket) -> None:
        log.info("engine.io client gone (ping timeout)", sid=sock.sid)
        # abort=False: a CLOSE packet tells a half-open client it was dropped
        await sock.close(wait=False, abort=False, reason=self.reason.PING_TIMEOUT)
        sockets: dict[str, Any] = self.sockets
        if sockets.get(sock.sid) is sock:
            del sockets[sock.sid]


class LeanSocketIO(socketio.AsyncServer):  # type: ignore[misc]
    """python-socketio's server on :class:`LeanEngineIO`, keeping a small environ per client."""

    def _engineio_server_class(self) -> type[LeanEngineIO]:
        return LeanEngineIO

    async def _handle_eio_connect(self, eio_sid: str, environ: dict[str, Any]) -> Any:
        kept = {key: environ[key] for key in KEPT_ENVIRON if key in environ}
        return await super()._handle_eio_connect(eio_sid, kept)
