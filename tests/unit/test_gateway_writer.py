"""transport/writer.py: EngineIOTransport finds each connection's Outlet once and lets go of it."""

from __future__ import annotations

from dataclasses import dataclass

from fleetcast.gateway.transport.outlet import Outlet
from fleetcast.gateway.transport.packets import Frame
from fleetcast.gateway.transport.writer import EngineIOTransport


@dataclass
class Conn:
    sid: str
    eio_sid: str


class Sockets:
    """A fake Engine.IO server: its outlets by eio sid, and what was aborted."""

    def __init__(self) -> None:
        self.outlets: dict[str, Outlet] = {}
        self.lookups = 0
        self.aborted: list[str] = []

    def outlet(self, eio_sid: str) -> Outlet | None:
        self.lookups += 1
        return self.outlets.get(eio_sid)

    async def abort(self, eio_sid: str) -> None:
        self.aborted.append(eio_sid)


def test_an_outlet_is_looked_up_once_and_held_packets_wait_for_the_poll() -> None:
    sockets = Sockets()
    sockets.outlets["e1"] = outlet = Outlet()
    writer, conn = EngineIOTransport(sockets), Conn("s1", "e1")
    assert writer.offer(conn, Frame('2["a",{}]', priority=True))
    assert writer.offer(conn, Frame('2["b",{}]', priority=True))
    assert sockets.lookups == 1
    assert outlet.qsize() == 2  # long-polling: held for the next GET


def test_a_connection_whose_socket_is_gone_takes_and_drops_frames() -> None:
    writer = EngineIOTransport(Sockets())
    assert writer.offer(Conn("s1", "gone"), Frame('2["a",{}]', priority=True))
    assert writer.write(Conn("s1", "gone"), '2["b",{}]') is False


def test_write_goes_out_behind_or_not_until_the_outlet_closes() -> None:
    sockets = Sockets()
    sockets.outlets["e1"] = outlet = Outlet()
    writer, conn = EngineIOTransport(sockets), Conn("s1", "e1")
    assert writer.write(conn, '2["session",{}]')
    assert outlet.qsize() == 1
    outlet.closed = True
    assert writer.write(conn, '2["x",{}]') is False


async def test_release_ends_a_waiting_poll_and_forgets_the_outlet() -> None:
    sockets = Sockets()
    sockets.outlets["e1"] = outlet = Outlet()
    writer, conn = EngineIOTransport(sockets), Conn("s1", "e1")
    writer.offer(conn, Frame('2["a",{}]', priority=True))
    writer.release(conn)
    assert outlet.qsize() == 2  # the frame, then python-engineio's "stop" (None)
    del sockets.outlets["e1"]
    assert writer.offer(conn, Frame('2["b",{}]', priority=True))  # gone: taken, dropped
    assert outlet.qsize() == 2


async def test_abort_asks_the_server_then_releases() -> None:
    sockets = Sockets()
    sockets.outlets["e1"] = outlet = Outlet()
    writer, conn = EngineIOTransport(sockets), Conn("s1", "e1")
    await writer.abort(conn)
    assert sockets.aborted == ["e1"]
    assert outlet.qsize() == 1
