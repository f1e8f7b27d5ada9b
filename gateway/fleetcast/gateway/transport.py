"""The one adapter that writes pre-encoded Socket.IO packets into Engine.IO.

python-socketio's own emit path creates one task per recipient and encodes
per call; fleetcast encodes a frame once per (event, room) and hands the same
text to every recipient's Engine.IO queue. That needs three things the public
API does not offer (write without a task, read a socket's queue depth, close
a transport without the CLOSE packet that stops clients from reconnecting),
so they live here and nowhere else, behind the :class:`Transport` protocol:
the performance work may replace this module wholesale.
"""

from __future__ import annotations

import contextlib
from typing import Any, Protocol

import orjson
from engineio import packet as eio_packet

from fleetcast.gateway.registry import Connection

#: Socket.IO packet type EVENT on the default namespace, as text.
_EVENT_PREFIX = "2"


def encode_event(name: str, payload: Any) -> str:
    """A Socket.IO EVENT packet (``2["name",payload]``) for the default namespace."""
    return _EVENT_PREFIX + orjson.dumps([name, payload]).decode()


class Transport(Protocol):
    """Where frames go once a connection may receive them."""

    def write(self, conn: Connection, text: str) -> bool:
        """Queue one packet for ``conn``; False when its transport is gone."""

    def pending(self, conn: Connection) -> int:
        """Packets queued in the transport for ``conn`` and not yet written out."""

    async def abort(self, conn: Connection) -> None:
        """Close the transport without a CLOSE packet: clients then reconnect by themselves."""

    def release(self, conn: Connection) -> None:
        """The connection is gone: end its writer (and a long-poll waiting on it) now."""


class EngineIOTransport:
    """Writes into python-engineio's per-socket queues; its own writers drain them."""

    def __init__(self, eio_server: Any) -> None:
        self._eio = eio_server

    def _socket(self, conn: Connection) -> Any:
        sock = self._eio.sockets.get(conn.eio_sid)
        if sock is None or sock.closed or sock.closing:
            return None
        return sock

    def write(self, conn: Connection, text: str) -> bool:
        sock = self._socket(conn)
        if sock is None:
            return False
        sock.queue.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, text))
        return True

    def pending(self, conn: Connection) -> int:
        sock = self._socket(conn)
        return 0 if sock is None else int(sock.queue.qsize())

    async def abort(self, conn: Connection) -> None:
        sock = self._eio.sockets.get(conn.eio_sid)
        if sock is None:
            return
        # close() runs the disconnect handlers; the None then ends the writer,
        # which flushes what is queued (the reason frame) and closes the socket.
        await sock.close(wait=False, abort=True, reason=self._eio.reason.SERVER_DISCONNECT)
        self.release(conn)

    def release(self, conn: Connection) -> None:
        # Without this, a polling client's pending GET waits out ping_interval +
        # ping_timeout after the client said goodbye.
        sock = self._eio.sockets.get(conn.eio_sid)
        if sock is not None:
            with contextlib.suppress(Exception):
                sock.queue.put_nowait(None)
