"""One Engine.IO socket's outgoing packets: held for long-polling, written at once on a websocket.

python-engineio gives every socket an ``asyncio.Queue`` and, on a websocket,
a writer task that awaits ``ws.send`` for each packet: about 3 KB and two
tasks per idle connection, and a task switch per delivered message. An
:class:`Outlet` stands in for that queue (it offers the subset of the queue
API python-engineio calls). While the socket long-polls it holds packets for
the next GET, as the queue did. Once the socket is on a websocket, every
packet is framed and written to the TCP transport synchronously, in the
order it was put, so Engine.IO's own packets (OPEN, CONNECT, acks, pings)
and fleetcast's frames can never overtake each other; there is no writer.

While a :class:`Cork` is held (the pub/sub listener holds one while it
handles a burst of messages), websocket frames are gathered per outlet and
written with one ``writelines`` each when it ends: one system call per
client per burst instead of one per event, never held past the burst.

Backpressure is the transport's own write buffer: :meth:`Outlet.offer` takes
a frame only while that buffer holds less than :data:`WS_WATERMARK` bytes
(:data:`POLL_WATERMARK` packets when polling); above it the caller keeps the
frame (the outbox bounds and sheds). A connection being cut off gets a close
frame, and its transport is aborted after :data:`CLOSE_GRACE_S` if the
client does not read it.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Final

from engineio import packet as eio_packet

from fleetcast.gateway.transport import wsframes
from fleetcast.gateway.transport.packets import Frame

#: Bytes a websocket's transport may hold unsent before frames wait in the outbox.
WS_WATERMARK: Final = 64 * 1024
#: Packets a long-polling socket may hold before frames wait in the outbox.
POLL_WATERMARK: Final = 64
#: Packets one long-poll response carries at most: python-engineio clients
#: refuse a payload of more than 16 (``Payload.max_decode_packets``).
POLL_BATCH: Final = 16
#: How long a closing websocket may take to flush before its transport is aborted.
CLOSE_GRACE_S: Final = 5.0
#: Packets a long-polling client may leave untaken (acks, pings; frames stop at
#: POLL_WATERMARK) before it counts as not reading.
POLL_HARD_LIMIT: Final = 1024


class Cork:
    """While held, websocket frames offered to outlets wait, and go out per outlet at the end."""

    __slots__ = ("active", "dirty")

    def __init__(self) -> None:
        self.active = False
        self.dirty: list[Outlet] = []

    @contextmanager
    def held(self) -> Iterator[None]:
        if self.active:
            yield
            return
        self.active = True
        try:
            yield
        finally:
            self.active = False
            dirty, self.dirty = self.dirty, []
            for outlet in dirty:
                outlet.uncork()


class Outlet:
    """The queue python-engineio writes into, and the fast path's way to a client."""

    __slots__ = (
        "_corked",
        "_drained",
        "_getters",
        "_held",
        "_limit",
        "_on_overflow",
        "_taken",
        "_transport",
        "closed",
    )

    def __init__(self) -> None:
        self._held: deque[Any] | None = None  # made on first use: a deque is 600 bytes
        self._getters: list[asyncio.Future[None]] | None = None
        self._drained: asyncio.Future[None] | None = None
        self._transport: asyncio.Transport | None = None
        self._taken = 0  # packets the current long-poll has taken
        self._corked: list[bytes] | None = None  # frames waiting for the cork's end
        #: True once the websocket ended or a CLOSE went out: nothing more is written.
        self.closed = False
        self._limit = 0  # bytes a client may leave unread (0: unbounded)
        self._on_overflow: tuple[Callable[[str], None], str] | None = None

    def bound(self, max_unsent_bytes: int, on_overflow: Callable[[str], None], sid: str) -> None:
        """Call ``on_overflow(sid)`` once when the client leaves more than this unread.

        Frames are held back below :data:`WS_WATERMARK` by :meth:`offer`; this
        bounds everything else written to the socket (acks, pings, notices),
        which a client that never reads would otherwise pile up without end.
        On long-polling, :data:`POLL_HARD_LIMIT` packets held play the part.
        """
        self._limit = max_unsent_bytes
        self._on_overflow = (on_overflow, sid)

    def _check_unread(self) -> None:
        if self._on_overflow is None or self.closed:
            return
        transport = self._transport
        over = (
            transport.get_write_buffer_size() > self._limit
            if transport is not None
            else self._held is not None and len(self._held) > POLL_HARD_LIMIT
        )
        if over:
            callback, sid = self._on_overflow
            self._on_overflow = None
            callback(sid)

    @property
    def on_websocket(self) -> bool:
        return self._transport is not None

    # --- the fast path -------------------------------------------------------------

    def offer(self, frame: Frame, cork: Cork | None = None) -> bool:
        """Send ``frame`` now (or at the end of a held ``cork``) unless the client is behind.

        False means the caller keeps it. A closed outlet takes (and drops)
        everything: its connection is going away.
        """
        transport = self._transport
        if transport is not None:
            if self.closed:
                return True
            if transport.get_write_buffer_size() >= WS_WATERMARK:
                return False
            wire = frame.wire
            if wire is None:
                wire = frame.wire = wsframes.eio_message(frame.text)
            if cork is None or not cork.active:
                try:
                    transport.write(wire)
                except RuntimeError:  # closed under us: the client left this very turn
                    self.closed = True
            elif self._corked is None:
                self._corked = [wire]
                cork.dirty.append(self)
            else:
                self._corked.append(wire)
            return True
        if self.closed:
            return True
        if self._held is not None and len(self._held) >= POLL_WATERMARK:
            return False
        self._hold(eio_packet.Packet(eio_packet.MESSAGE, frame.text))
        return True

    # --- websocket life ----------------------------------------------------------------

    def attach(self, transport: asyncio.Transport) -> None:
        """The socket is on a websocket now: write what was held, then write through."""
        self._transport = transport
        held, self._held = self._held, None
        for pkt in held or ():
            self._write_packet(pkt)
        self._set_drained()

    def uncork(self) -> None:
        """Write the frames gathered under a cork, in one call."""
        corked, self._corked = self._corked, None
        transport = self._transport
        if corked and transport is not None and not self.closed:
            try:
                transport.writelines(corked)
            except RuntimeError:  # closed under us
                self.closed = True

    def shut(self, code: int = wsframes.CLOSE_NORMAL) -> None:
        """No more writes: a close frame, then the transport closes once flushed."""
        if self.closed:
            return
        self.uncork()
        self.closed = True
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        transport.write(wsframes.close(code))
        transport.close()
        if transport.get_write_buffer_size():
            asyncio.get_running_loop().call_later(CLOSE_GRACE_S, transport.abort)

    def lost(self) -> None:
        """The websocket is gone: whatever comes now is dropped."""
        self.closed = True

    def _write_packet(self, pkt: Any) -> None:
        if self.closed:
            return
        if pkt is None:  # python-engineio's "writer, stop"
            self.shut()
            return
        assert self._transport is not None
        try:
            self._transport.write(wsframes.eio_packet(pkt.encode()))
        except RuntimeError:  # closed under us
            self.closed = True
            return
        if pkt.packet_type == eio_packet.CLOSE:
            self.shut()

    # --- the asyncio.Queue subset python-engineio uses -----------------------------------

    def put_nowait(self, pkt: Any) -> None:
        if self._transport is not None:
            if self._corked:  # frames offered earlier go first
                self.uncork()
            self._write_packet(pkt)
        else:
            self._hold(pkt)
        if self._limit:
            self._check_unread()

    async def put(self, pkt: Any) -> None:
        self.put_nowait(pkt)

    def get_nowait(self) -> Any:
        """The next held packet, up to :data:`POLL_BATCH` per poll (the rest wait for the next)."""
        held = self._held
        if not held or self._taken >= POLL_BATCH:
            raise asyncio.QueueEmpty
        self._taken += 1
        pkt = held.popleft()
        if not held:
            self._set_drained()
        return pkt

    async def get(self) -> Any:
        """The next held packet (a long-poll waits here, under python-engineio's timeout)."""
        while not self._held:
            waiter = asyncio.get_running_loop().create_future()
            if self._getters is None:
                self._getters = []
            self._getters.append(waiter)
            try:
                await waiter
            finally:
                if self._getters is not None and waiter in self._getters:
                    self._getters.remove(waiter)
        self._taken = 0  # a new poll begins
        return self.get_nowait()

    def task_done(self) -> None:
        """Nothing to count: :meth:`join` waits for the held packets to be taken."""

    async def join(self) -> None:
        """Wait until every held packet was taken by a poll (at once on a websocket)."""
        if not self._held:
            return
        if self._drained is None:
            self._drained = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._drained)

    def qsize(self) -> int:
        return len(self._held) if self._held is not None else 0

    def empty(self) -> bool:
        return not self._held

    def _hold(self, pkt: Any) -> None:
        if self._held is None:
            self._held = deque()
        self._held.append(pkt)
        getters = self._getters
        if getters:
            for waiter in getters:
                if not waiter.done():
                    waiter.set_result(None)
            getters.clear()

    def _set_drained(self) -> None:
        drained, self._drained = self._drained, None
        if drained is not None and not drained.done():
            drained.set_result(None)
