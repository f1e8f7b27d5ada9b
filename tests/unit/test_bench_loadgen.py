"""The load generator's pure parts: WebSocket/Socket.IO framing and per-client accounting."""

from __future__ import annotations

import orjson

from bench.loadgen import codec, recorder


def server_frame(payload: bytes, opcode: int = codec.OP_TEXT) -> bytes:
    """An unmasked frame as a server writes it."""
    size = len(payload)
    if size < 126:
        return bytes((0x80 | opcode, size)) + payload
    if size < 1 << 16:
        return bytes((0x80 | opcode, 126)) + size.to_bytes(2, "big") + payload
    return bytes((0x80 | opcode, 127)) + size.to_bytes(8, "big") + payload


def test_client_frames_are_masked_and_read_back() -> None:
    for size in (0, 5, 125, 126, 70_000):
        payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
        frame = codec.client_frame(payload)
        assert frame[1] & 0x80  # mask bit
        frames, rest = codec.split_frames(frame)
        assert frames == [(codec.OP_TEXT, True, payload)]
        assert rest == b""


def test_split_frames_keeps_an_incomplete_tail() -> None:
    whole = server_frame(b"42[1]") + server_frame(b"x" * 300)
    for cut in range(len(whole)):
        frames, rest = codec.split_frames(whole[:cut])
        again, tail = codec.split_frames(rest + whole[cut:])
        assert [f[2] for f in frames + again] == [b"42[1]", b"x" * 300]
        assert tail == b""


def test_socketio_packets() -> None:
    assert codec.sio_connect({"token": "t"}) == b'40{"token":"t"}'
    assert codec.sio_event("subscribe", {"room": "org"}, 3) == b'423["subscribe",{"room":"org"}]'
    ack = codec.parse_sio(b'312[{"ok":true,"room":"channel:ch-1"}]')
    assert (ack.kind, ack.ack_id, ack.data) == (3, 12, [{"ok": True, "room": "channel:ch-1"}])
    error = codec.parse_sio(b'4{"message":"no","data":{"code":"invalid_token"}}')
    assert error.kind == 4
    assert error.ack_id is None
    assert error.data["data"]["code"] == "invalid_token"
    assert codec.parse_sio(b"0").data is None


def test_probe_finds_sequence_and_publish_time() -> None:
    data = {"a": 1, "bph": 3, "bseq": 42, "bt": 123456789}
    frame = b"42" + orjson.dumps(["x", {"event_type": "x", "data": data, "room": "org"}])
    assert codec.probe(frame) == (3, 42, 123456789)
    assert codec.probe(b'42["session",{}]') is None


def test_upgrade_status() -> None:
    assert codec.upgrade_status(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket") == 101
    assert codec.upgrade_status(b"HTTP/1.1 400 Bad Request") == 400
    assert codec.upgrade_status(b"garbage") == 0


def test_take_upgrade_waits_for_the_whole_head() -> None:
    assert codec.take_upgrade(b"HTTP/1.1 101 Switching") == (None, b"HTTP/1.1 101 Switching")
    assert codec.take_upgrade(b"HTTP/1.1 101 OK\r\nA: b\r\n\r\n\x81\x01x") == (101, b"\x81\x01x")
    assert codec.take_upgrade(b"HTTP/1.1 403 No\r\n\r\n") == (403, b"")


def test_recorder_counts_probes_only_when_armed() -> None:
    rec = recorder.Recorder()
    rec.size(2)
    frame = (codec.OP_TEXT, True, b'42["e",{"data":{"bph":5,"bseq":1,"bt":1000}}]')
    stale = (codec.OP_TEXT, True, b'42["e",{"data":{"bph":4,"bseq":1,"bt":1000}}]')
    rec.receive(0, [frame], 5000)
    assert rec.deliveries == 0
    rec.arm(3, phase=5)
    rec.receive(0, [frame, frame, stale], 5000)
    rec.receive(1, [(codec.OP_TEXT, True, b'42["e",{"data":{"bph":5,"bseq":9,"bt":1}}]')], 5000)
    assert rec.deliveries == 1  # the second copy of (client 0, event 1) is not a delivery
    assert rec.copies == 1
    assert rec.stray == 2  # one of an earlier phase, one beyond this phase's events
    assert list(rec.latencies_ns) == [4000]  # the first arrival's latency only
    assert rec.counts[0][1] == 2


def test_accounting_finds_lost_duplicated_and_leaked() -> None:
    event_rooms = [["channel:a:org:o"], ["channel:b:org:o", "org:o"], ["channel:b:org:o"]]
    clients = [["org:o", "channel:a:org:o"], ["channel:b:org:o"]]
    counts = [bytearray([1, 0, 1]), bytearray([0, 2, 1])]
    acc = recorder.account(counts, clients, event_rooms, [0, 1, 1], ["priority", "position"])
    assert acc.expected == 4  # client 0: events 0, 1; client 1: events 1, 2
    assert acc.received == 4  # unique (client, event) pairs of 5 arrivals: copies do not count
    assert acc.lost == 1
    assert acc.lost_by_category == {"priority": 0, "position": 1}
    assert acc.duplicated == 1
    assert acc.room_copies == 0
    assert acc.unexpected == 1  # client 0 got event 2, whose room it is not in
    assert acc.clients_with_loss == 1


#: An incident update goes to the incident and the channel room; a console is in
#: both, a field unit in the channel only.
INCIDENT = ["incident:i:org:o", "channel:c:org:o"]
CONSOLE = ["org:o", "incident:i:org:o", "channel:c:org:o"]
UNIT = ["org:o", "channel:c:org:o"]


def test_room_copies_are_excused_only_for_a_per_channel_server() -> None:
    counts = [bytearray([2]), bytearray([1])]  # the console got one copy per shared room
    names = ["priority"]
    per_channel = recorder.account(
        counts, [CONSOLE, UNIT], [INCIDENT], [0], names, per_channel=True
    )
    assert (per_channel.received, per_channel.room_copies, per_channel.duplicated) == (2, 1, 0)
    once = recorder.account(counts, [CONSOLE, UNIT], [INCIDENT], [0], names)
    assert (once.received, once.room_copies, once.duplicated) == (2, 0, 1)


def test_copies_beyond_the_shared_rooms_are_duplicates() -> None:
    counts = [bytearray([3]), bytearray([2])]  # console: 1 room copy + 1; unit: in one room only
    acc = recorder.account(counts, [CONSOLE, UNIT], [INCIDENT], [0], ["priority"], per_channel=True)
    assert acc.received == 2
    assert acc.room_copies == 1
    assert acc.duplicated == 2
    assert acc.lost == acc.unexpected == 0


def test_a_room_copy_is_never_a_delivery_nor_hides_a_loss() -> None:
    counts = [bytearray([0, 2]), bytearray([0, 0])]
    event_rooms = [INCIDENT, ["org:o"]]
    acc = recorder.account(
        counts, [CONSOLE, UNIT], event_rooms, [0, 0], ["priority"], per_channel=True
    )
    assert acc.expected == 4
    assert acc.received == 1
    assert acc.lost == 3
    assert acc.room_copies == 0  # event 1 went to one room of the console: its copy is a duplicate
    assert acc.duplicated == 1
