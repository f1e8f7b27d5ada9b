"""Where frames leave the gateway: :meth:`EngineIOTransport.offer` -> each connection's Outlet.

The rooms layer hands every frame of every connection to this one object
(the outbox's ``Transport`` seam). It finds the connection's
:class:`~fleetcast.gateway.transport.outlet.Outlet` (the stand-in for
python-engineio's per-socket queue, looked up once per connection and kept
here, not in the room table) and offers the frame: on a websocket the Outlet
writes the frame's bytes (built once per frame) straight to the TCP
transport; on long-polling it holds the packet for the next GET.

Three things python-engineio's public API does not offer (write without a
task, know when a client is behind, close a transport without the CLOSE
packet that stops clients from reconnecting) live here and in engine.py.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Protocol

from engineio import packet as eio_packet

from fleetcast.gateway.transport.outlet import Cork, Outlet
from fleetcast.gateway.transport.packets import Frame


class Addressed(Protocol):
    """A connection as the writer knows it: its Socket.IO and Engine.IO session ids.

    (rooms/registry.py's Connection; the transport never imports the room table.)
    """

    @property
    def sid(self) -> str: ...

    @property
    def eio_sid(self) -> str: ...


class Sockets(Protocol):
    """What the writer needs of the Engine.IO server (engine.LeanEngineIO)."""

    def outlet(self, eio_sid: str) -> Outlet | None: ...

    async def abort(self, eio_sid: str) -> None: ...


#: What a connection whose Engine.IO socket is gone writes into.
_GONE = Outlet()
_GONE.closed = True


class EngineIOTransport:
    """Offers frames to the Outlets of the Engine.IO server's sockets."""

    def __init__(self, sockets: Sockets) -> None:
        self._sockets = sockets
        self._cork = Cork()
        self._outlets: dict[str, Outlet] = {}

    @contextlib.contextmanager
    def corked(self) -> Iterator[None]:
        """Frames offered meanwhile go out at the end, one write per websocket."""
        with self._cork.held():
            yield

    def _outlet(self, conn: Addressed) -> Outlet:
        """The connection's Outlet, looked up once and kept until :meth:`release`."""
        outlet = self._outlets.get(conn.sid)
        if outlet is None:
            found = self._sockets.outlet(conn.eio_sid)
            if found is None:
                return _GONE
            outlet = self._outlets[conn.sid] = found
        return outlet

    def offer(self, conn: Addressed, frame: Frame) -> bool:
        return self._outlet(conn).offer(frame, self._cork)

    def write(self, conn: Addressed, text: str) -> bool:
        outlet = self._outlet(conn)
        if outlet.closed:
            return False
        outlet.put_nowait(eio_packet.Packet(eio_packet.MESSAGE, text))
        return True

    async def abort(self, conn: Addressed) -> None:
        """Close without a CLOSE packet (clients then reconnect by themselves), once flushed."""
        await self._sockets.abort(conn.eio_sid)
        self.release(conn)

    def release(self, conn: Addressed) -> None:
        """The connection is gone: close its websocket (or end a long-poll waiting on it) now.

        Without this, a polling client's pending GET waits out ping_interval +
        ping_timeout after the client said goodbye.
        """
        outlet = self._outlets.pop(conn.sid, None) or self._sockets.outlet(conn.eio_sid)
        if outlet is not None:
            with contextlib.suppress(Exception):
                outlet.put_nowait(None)
