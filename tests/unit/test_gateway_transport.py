"""The fast path's pure parts: frames, the Outlet (queue and writer), heartbeat, manager, pushes.

No server: a recording stand-in for the asyncio transport, fake sockets and a
fake clock. The wire itself (standard clients, both transports) is tested in
tests/integration/test_gateway_fastpath.py.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import hiredis
import pytest
import socketio
from engineio import packet as eio_packet

from fleetcast.gateway.transport import outlet as outlet_module
from fleetcast.gateway.transport import wsframes
from fleetcast.gateway.transport.engine import LeanManager
from fleetcast.gateway.transport.heartbeat import Heartbeat
from fleetcast.gateway.transport.outlet import Cork, Outlet
from fleetcast.gateway.transport.packets import Frame
from fleetcast.gateway.transport.pushes import PushReader


def parse_frame(data: bytes) -> tuple[int, int, bytes, bytes]:
    """(first byte, second byte, payload, rest) of one unmasked frame, per RFC 6455 5.2."""
    first, second = data[0], data[1]
    size, at = second & 0x7F, 2
    if size == 126:
        (size,), at = struct.unpack("!H", data[2:4]), 4
    elif size == 127:
        (size,), at = struct.unpack("!Q", data[2:10]), 10
    return first, second, data[at : at + size], data[at + size :]


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_frame_lengths_use_the_shortest_encoding(size: int) -> None:
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    data = wsframes.frame(payload)
    first, second, body, rest = parse_frame(data)
    assert first == 0x81  # FIN, no RSV bit (no extension), text
    assert second & 0x80 == 0  # a server never masks
    assert body == payload
    assert rest == b""
    assert len(data) - size == (2 if size < 126 else 4 if size < 65536 else 10)


def test_engineio_message_close_and_binary_frames() -> None:
    text = '2["a",{"é":1}]'  # 16 bytes with the "4": é takes two
    assert wsframes.eio_message(text) == b"\x81\x104" + text.encode()
    assert wsframes.eio_packet("3probe") == b"\x81\x063probe"
    assert wsframes.eio_packet(b"\x01\x02") == b"\x82\x02\x01\x02"
    assert wsframes.close() == b"\x88\x02\x03\xe8"  # 1000, normal closure


@dataclass
class FakeTransport:
    """The asyncio transport API the Outlet uses; ``unsent`` plays the write buffer."""

    written: list[bytes] = field(default_factory=list)
    unsent: int = 0
    closing: bool = False
    aborted: bool = False

    dead: bool = False  # uvloop raises RuntimeError once the handle is closed

    def write(self, data: bytes) -> None:
        assert not self.closing, "write after close"
        if self.dead:
            raise RuntimeError("unable to perform operation; the handler is closed")
        self.written.append(data)

    def writelines(self, parts: list[bytes]) -> None:
        self.write(b"".join(parts))

    def get_write_buffer_size(self) -> int:
        return self.unsent

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.aborted = self.closing = True

    def messages(self) -> list[str]:
        return [parse_frame(data)[2].decode() for data in self.written]


def attached(outlet: Outlet) -> FakeTransport:
    transport = FakeTransport()
    outlet.attach(transport)  # type: ignore[arg-type]
    return transport


def message(text: str) -> eio_packet.Packet:
    return eio_packet.Packet(eio_packet.MESSAGE, text)


async def test_polling_outlet_holds_packets_in_order_for_the_next_get() -> None:
    outlet = Outlet()
    await outlet.put(message("40"))
    assert outlet.offer(Frame('2["x",1]', False))
    assert outlet.qsize() == 2
    assert (await outlet.get()).encode() == "440"
    assert outlet.get_nowait().encode() == '42["x",1]'
    with pytest.raises(asyncio.QueueEmpty):
        outlet.get_nowait()


async def test_polling_get_waits_for_a_packet_and_join_for_the_drain() -> None:
    outlet = Outlet()
    getter = asyncio.create_task(outlet.get())
    await asyncio.sleep(0)
    assert not getter.done()
    outlet.put_nowait(message("a"))
    outlet.put_nowait(message("b"))
    assert (await getter).data == "a"
    joined = asyncio.create_task(outlet.join())
    await asyncio.sleep(0)
    assert not joined.done()  # "b" still waits for a poll
    outlet.get_nowait()
    await asyncio.wait_for(joined, 1)


async def test_a_timed_out_poll_leaves_no_waiter_behind() -> None:
    outlet = Outlet()
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(outlet.get(), 0.01)
    outlet.put_nowait(message("late"))
    assert outlet.get_nowait().data == "late"


def test_polling_outlet_takes_frames_up_to_its_watermark() -> None:
    outlet = Outlet()
    for i in range(outlet_module.POLL_WATERMARK):
        assert outlet.offer(Frame(f"2[{i}]", False))
    assert not outlet.offer(Frame("2[-1]", True))
    outlet.put_nowait(message("ack"))  # python-socketio's own packets are never refused
    assert outlet.qsize() == outlet_module.POLL_WATERMARK + 1


def test_attach_writes_held_packets_first_then_writes_through() -> None:
    outlet = Outlet()
    outlet.put_nowait(eio_packet.Packet(eio_packet.OPEN, {"sid": "s"}))
    outlet.put_nowait(message("40"))
    transport = attached(outlet)
    assert outlet.on_websocket
    assert outlet.qsize() == 0
    outlet.put_nowait(eio_packet.Packet(eio_packet.PING))
    assert outlet.offer(Frame('2["e",{}]', False))
    assert transport.messages() == ['0{"sid":"s"}', "440", "2", '42["e",{}]']


def test_one_frame_is_built_once_and_the_same_bytes_go_to_every_websocket() -> None:
    first, second = Outlet(), Outlet()
    a, b = attached(first), attached(second)
    frame = Frame('2["e",{"n":1}]', True)
    assert first.offer(frame)
    assert second.offer(frame)
    assert a.written[0] is b.written[0] is frame.wire
    assert frame.wire == wsframes.eio_message(frame.text)


def test_websocket_outlet_refuses_frames_while_the_client_is_behind() -> None:
    outlet = Outlet()
    transport = attached(outlet)
    transport.unsent = outlet_module.WS_WATERMARK
    assert not outlet.offer(Frame("2[1]", False))
    transport.unsent = outlet_module.WS_WATERMARK - 1
    assert outlet.offer(Frame("2[2]", False))
    assert transport.messages() == ["42[2]"]


@pytest.mark.parametrize("last", [None, eio_packet.Packet(eio_packet.CLOSE)])
async def test_close_packet_or_stop_closes_the_websocket_after_a_close_frame(
    last: eio_packet.Packet | None,
) -> None:
    outlet = Outlet()
    transport = attached(outlet)
    outlet.put_nowait(message('2["disconnect_reason",{}]'))
    outlet.put_nowait(last)
    assert outlet.closed
    assert transport.closing
    assert not transport.aborted
    sent = [parse_frame(data) for data in transport.written]
    assert sent[0][2] == b'42["disconnect_reason",{}]'
    if last is not None:  # the Engine.IO CLOSE packet goes out before the close frame
        assert sent[1][2] == b"1"
    assert transport.written[-1] == wsframes.close()
    assert len(sent) == (3 if last is not None else 2)
    assert outlet.offer(Frame("2[1]", True))  # taken and dropped: the connection is going
    outlet.put_nowait(message("late"))
    assert transport.written[-1] == wsframes.close()


async def test_a_closing_websocket_that_does_not_flush_is_aborted_after_the_grace(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(outlet_module, "CLOSE_GRACE_S", 0.01)
    outlet = Outlet()
    transport = attached(outlet)
    transport.unsent = 10
    outlet.shut()
    assert transport.closing
    assert not transport.aborted
    await asyncio.sleep(0.05)
    assert transport.aborted


@dataclass(eq=False)
class FakeSocket:
    sid: str
    last_ping: float | None = None
    closing: bool = False
    closed: bool = False
    queue: Outlet = field(default_factory=Outlet)

    def pong(self, heartbeat: Heartbeat) -> None:
        """What LeanSocket.schedule_ping does when a PONG comes in."""
        if self.last_ping:
            self.last_ping = None
            heartbeat.schedule(self)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_heartbeat() -> tuple[Heartbeat, Clock, list[Any]]:
    clock, closed = Clock(), []

    async def on_timeout(sock: Any) -> None:
        closed.append(sock.sid)

    return Heartbeat(25.0, 20.0, on_timeout, clock=clock), clock, closed


def test_pings_go_out_one_interval_after_scheduling_in_order() -> None:
    heartbeat, clock, _ = make_heartbeat()
    a, b = FakeSocket("a"), FakeSocket("b")
    heartbeat.schedule(a)
    clock.now += 1
    heartbeat.schedule(b)
    assert heartbeat.next_due() == 1025.0
    clock.now = 1025.0
    assert heartbeat.send_due(clock.now) == 1
    assert a.last_ping is not None
    assert b.last_ping is None
    assert a.queue.get_nowait().packet_type == eio_packet.PING
    assert heartbeat.next_due() == 1026.0


def test_silent_sockets_time_out_and_answering_ones_do_not() -> None:
    heartbeat, clock, _ = make_heartbeat()
    silent, answering, leaving = FakeSocket("s"), FakeSocket("a"), FakeSocket("l")
    for sock in (silent, answering, leaving):
        heartbeat.schedule(sock)
    clock.now += 25
    assert heartbeat.send_due(clock.now) == 3
    answering.pong(heartbeat)
    leaving.closed = True
    clock.now += 19.9
    assert heartbeat.overdue(clock.now) == []
    clock.now += 0.1
    assert heartbeat.overdue(clock.now) == [silent]
    clock.now += 5
    assert heartbeat.send_due(clock.now) == 1  # the answering one, 25 s after its PONG


def test_closed_sockets_are_never_pinged() -> None:
    heartbeat, clock, _ = make_heartbeat()
    sock = FakeSocket("x")
    heartbeat.schedule(sock)
    sock.closing = True
    clock.now += 30
    assert heartbeat.send_due(clock.now) == 0
    assert heartbeat.next_due() is None


async def test_run_wakes_for_a_first_socket_and_reports_timeouts() -> None:
    clock, closed = Clock(), []

    async def on_timeout(sock: Any) -> None:
        closed.append(sock.sid)

    heartbeat = Heartbeat(0.01, 0.01, on_timeout, clock=clock)
    runner = asyncio.create_task(heartbeat.run())
    try:
        await asyncio.sleep(0.01)  # idle: waits for a socket
        sock = FakeSocket("quiet")
        heartbeat.schedule(sock)
        clock.now += 0.01
        for _ in range(100):
            await asyncio.sleep(0.01)
            clock.now += 0.01
            if closed:
                break
        assert closed == ["quiet"]
    finally:
        runner.cancel()
        with pytest.raises(asyncio.CancelledError):
            await runner


def client_frame(payload: bytes, opcode: int = wsframes.OP_TEXT, *, fin: bool = True) -> bytes:
    mask = b"\x01\x02\x03\x04"
    first = (0x80 if fin else 0) | opcode
    size = len(payload)
    if size < 126:
        header = bytes((first, 0x80 | size))
    else:
        header = bytes((first, 0x80 | 126)) + size.to_bytes(2, "big")
    return header + mask + wsframes.unmask(mask, payload)


def test_client_frames_are_unmasked_and_split_at_frame_boundaries() -> None:
    data = client_frame(b"42[1]") + client_frame(b"x" * 300) + client_frame(b"", wsframes.OP_PING)
    frames, rest = wsframes.split_client_frames(data + data[:5], 1000)
    assert frames == [(1, True, b"42[1]"), (1, True, b"x" * 300), (9, True, b"")]
    assert rest == data[:5]
    assert wsframes.split_client_frames(data[:3], 1000) == ([], data[:3])


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"\x81\x03abc", wsframes.CLOSE_PROTOCOL_ERROR),  # not masked
        (b"\xc1\x80\0\0\0\0", wsframes.CLOSE_PROTOCOL_ERROR),  # RSV1
        (b"\x83\x80\0\0\0\0", wsframes.CLOSE_PROTOCOL_ERROR),  # reserved opcode
        (b"\x09\x80\0\0\0\0", wsframes.CLOSE_PROTOCOL_ERROR),  # fragmented ping
        (b"\x81\xfe\x04\x00", wsframes.CLOSE_TOO_BIG),  # 1024 bytes announced, limit 1000
    ],
)
def test_client_frames_that_break_the_protocol_are_refused(data: bytes, code: int) -> None:
    with pytest.raises(wsframes.FrameError) as refused:
        wsframes.split_client_frames(data, 1000)
    assert refused.value.code == code


def test_one_long_poll_takes_at_most_a_batch_of_packets() -> None:
    outlet = Outlet()
    for i in range(outlet_module.POLL_BATCH + 3):
        outlet.put_nowait(message(str(i)))
    taken = [outlet.get_nowait().data for _ in range(outlet_module.POLL_BATCH)]
    with pytest.raises(asyncio.QueueEmpty):
        outlet.get_nowait()
    assert taken == [str(i) for i in range(outlet_module.POLL_BATCH)]
    assert outlet.qsize() == 3


def test_a_cork_gathers_each_outlets_frames_into_one_write_at_its_end() -> None:
    cork, first, second = Cork(), Outlet(), Outlet()
    a, b = attached(first), attached(second)
    with cork.held():
        for n in range(3):
            assert first.offer(Frame(f"2[{n}]", False), cork)
        assert second.offer(Frame("2[9]", True), cork)
        assert a.written == []
    assert len(a.written) == 1  # three frames in one write
    rest, payloads = a.written[0], []
    while rest:
        _, _, payload, rest = parse_frame(rest)
        payloads.append(payload)
    assert payloads == [b"42[0]", b"42[1]", b"42[2]"]
    assert b.messages() == ["42[9]"]
    assert first.offer(Frame("2[3]", False), cork)  # no cork held: written at once
    assert len(a.written) == 2


def test_engineio_packets_never_overtake_corked_frames() -> None:
    cork, outlet = Cork(), Outlet()
    transport = attached(outlet)
    with cork.held():
        outlet.offer(Frame("2[1]", False), cork)
        outlet.put_nowait(message('3["ack"]'))  # python-socketio writes while the cork is held
        outlet.offer(Frame("2[2]", False), cork)
        outlet.shut()
    sent = []
    for data in transport.written:
        while data:
            _, _, payload, data = parse_frame(data)
            sent.append(payload)
    assert sent == [b"42[1]", b'43["ack"]', b"42[2]", b"\x03\xe8"]


async def test_lean_manager_disconnect_leaves_only_the_clients_own_rooms() -> None:
    manager = LeanManager()
    eio = SimpleNamespace(generate_id=iter("abc").__next__)
    manager.set_server(SimpleNamespace(eio=eio, packet_class=socketio.packet.Packet))
    manager.initialize()
    sids = [await manager.connect(f"eio-{n}", "/") for n in range(3)]
    assert sids == ["a", "b", "c"]
    manager.basic_disconnect("b", "/")
    assert set(manager.rooms["/"]) == {None, "a", "c"}
    assert set(manager.rooms["/"][None]) == {"a", "c"}
    with pytest.raises(ValueError, match="registry"):
        manager.basic_enter_room("a", "/", "channel:c1:org:o1")


async def test_push_reader_returns_every_complete_reply_of_one_read() -> None:
    stream = asyncio.StreamReader()
    reader = PushReader(stream)
    assert await reader.read(0.01) == []  # nothing came within the wait
    stream.feed_data(
        b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$2\r\nhi\r\n"
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nd\r\n:2\r\n"
        b"*3\r\n$7\r\nmessage\r\n$1\r\nc\r\n$6\r\nwor"  # the rest comes later
    )
    assert await reader.read(0.01) == [[b"message", b"c", b"hi"], [b"subscribe", b"d", 2]]
    stream.feed_data(b"ld!\r\n")
    assert await reader.read(0.01) == [[b"message", b"c", b"world!"]]
    stream.feed_data(b"-ERR no\r\n")
    with pytest.raises(hiredis.ReplyError):
        await reader.read(0.01)
    stream.feed_eof()
    with pytest.raises(ConnectionError):
        await reader.read(0.01)


def test_a_transport_closed_under_the_outlet_drops_frames_instead_of_raising() -> None:
    cork, outlet = Cork(), Outlet()
    transport = attached(outlet)
    transport.dead = True  # the client left; connection_lost has not run yet
    assert outlet.offer(Frame("2[1]", False))  # taken and dropped, nothing raised
    assert outlet.closed
    other = Outlet()
    attached(other).dead = True
    with cork.held():
        assert other.offer(Frame("2[2]", False), cork)
    assert other.closed
