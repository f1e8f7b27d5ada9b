"""Where frames leave the gateway: each connection's Outlet (see outlet.py and engine.py).

python-socketio's own emit path creates one task per recipient and encodes
per call; fleetcast encodes a frame once per (event, room) and offers the
same :class:`Frame` to every recipient. On a websocket the Outlet writes the
frame's bytes (built once) straight to the TCP transport; on long-polling it
holds the packet for the next GET. Three things the public API does not offer
(write without a task, know when a client is behind, close a transport
without the CLOSE packet that stops clients from reconnecting) live here and
in engine.py, behind the :class:`Transport` protocol the outbox uses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any, Protocol

from engineio import packet as eio_packet

from fleetcast.gateway.rooms.registry import Connection
from fleetcast.gateway.transport.outlet import Cork, Outlet
from fleetcast.gateway.transport.packets import Frame


class Transport(Protocol):
    """Where frames go once a connection may receive them."""

    def offer(self, conn: Connection, frame: Frame) -> bool:
        """Send ``frame`` unless ``conn`` is behind (False: the caller keeps it).

        A connection whose transport is gone takes and drops the frame.
        """

    def write(self, conn: Connection, text: str) -> bool:
        """Send one packet to ``conn`` now, behind or not; False when its transport is gone."""

    async def abort(self, conn: Connection) -> None:
        """Close the transport without a CLOSE packet: clients then reconnect by themselves."""

    def release(self, conn: Connection) -> None:
        """The connection is gone: close its websocket (or end a long-poll waiting on it) now."""


#: What a connection whose Engine.IO socket is gone writes into.
_GONE = Outlet()
_GONE.closed = True


class EngineIOTransport:
    """Offers frames to the Outlets of the sockets of
    :class:`~fleetcast.gateway.transport.engine.LeanEngineIO`."""

    def __init__(self, eio_server: Any) -> None:
        self._eio = eio_server
        self._cork = Cork()

    @contextlib.contextmanager
    def corked(self) -> Iterator[None]:
        """Frames offered meanwhile go out at the end, one write per websocket."""
        with self._cork.held():
            yield

    def _outlet(self, conn: Connection) -> Outlet:
        """The connection's Outlet, looked up once and kept on the connection."""
        outlet = conn.outlet
        if outlet is None:
            sock = self._eio.sockets.get(conn.eio_sid)
            queue = None if sock is None else sock.queue
            if not isinstance(queue, Outlet):
                return _GONE
            outlet = conn.outlet = queue
        return outlet  # type: ignore[no-any-return]

    def offer(self, conn: Connection, frame: Frame) -> bool:
        return self._outlet(conn).offer(frame, self._cork)

    def write(self, conn: Connection, text: str) -> bool:
        outlet = self._outlet(conn)
        if outlet.closed:
            return False
        outlet.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, text))
        return True

    async def abort(self, conn: Connection) -> None:
        sock = self._eio.sockets.get(conn.eio_sid)
        if sock is None:
            return
        # close() runs the disconnect handlers; the release then closes the
        # websocket once the reason frame (already written) is flushed.
        await sock.close(wait=False, abort=True, reason=self._eio.reason.SERVER_DISCONNECT)
        self.release(conn)

    def release(self, conn: Connection) -> None:
        # Without this, a polling client's pending GET waits out ping_interval +
        # ping_timeout after the client said goodbye.
        outlet = self._outlet(conn)
        if outlet is not _GONE:
            with contextlib.suppress(Exception):
                outlet.put_nowait(None)
