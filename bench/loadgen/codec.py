"""Just enough WebSocket, Engine.IO v4 and Socket.IO v5 to be a client.

Pure byte functions, no I/O: the client protocol feeds them what the socket
read and writes what they return. Written by hand (not a client library) so a
received frame costs a few microseconds of Python, which keeps one load
generator core ahead of the server core it measures.
"""

from __future__ import annotations

import base64
import os
import re
from dataclasses import dataclass
from typing import Any, Final

import orjson

OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

#: Engine.IO v4 packet types (first character of a text frame).
EIO_OPEN: Final = ord("0")
EIO_CLOSE: Final = ord("1")
EIO_PING: Final = ord("2")
EIO_MESSAGE: Final = ord("4")

#: The probe every benchmark event carries as the last keys of ``data``:
#: ``"bph":<phase>,"bseq":<seq>,"bt":<publish monotonic ns>``. Both servers
#: forward ``data`` in key order, so :func:`probe` finds it without parsing
#: the whole event.
PROBE: Final = re.compile(rb'"bph":(\d+),"bseq":(\d+),"bt":(\d+)')


def upgrade_request(host: str, port: int, path: str, query: str) -> bytes:
    """The HTTP/1.1 request that opens a WebSocket (no extensions offered)."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path}?{query} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode()


def upgrade_status(head: bytes) -> int:
    """Status code of the server's response head (``101`` when upgraded)."""
    try:
        return int(head.split(b" ", 2)[1])
    except (IndexError, ValueError):
        return 0


def take_upgrade(buf: bytes) -> tuple[int | None, bytes]:
    """(status, what follows the head) once the response head is complete, else (None, buf)."""
    head, sep, rest = buf.partition(b"\r\n\r\n")
    if not sep:
        return None, buf
    return upgrade_status(head), rest


def client_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, masked frame, as RFC 6455 requires of clients."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 1 << 16:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    mask = os.urandom(4)
    if not size:
        return head + mask
    keystream = (mask * (size // 4 + 1))[:size]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")
    return head + mask + masked.to_bytes(size, "big")


def split_frames(buf: bytes) -> tuple[list[tuple[int, bool, bytes]], bytes]:
    """Cut the complete server frames off ``buf``: ``([(opcode, fin, payload)], rest)``.

    Server frames are unmasked; a masked one is read anyway (mask applied).
    The common case, one whole final text frame per read, takes a short path.
    """
    if len(buf) >= 4 and buf[0] == 0x81:
        size = buf[1]
        if size < 126 and len(buf) == size + 2:
            return [(OP_TEXT, True, buf[2:])], b""
        if size == 126 and len(buf) == ((buf[2] << 8) | buf[3]) + 4:
            return [(OP_TEXT, True, buf[4:])], b""
    frames: list[tuple[int, bool, bytes]] = []
    pos, end = 0, len(buf)
    while end - pos >= 2:
        b0, b1 = buf[pos], buf[pos + 1]
        size, head = b1 & 0x7F, 2
        if size == 126:
            if end - pos < 4:
                break
            size, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
        elif size == 127:
            if end - pos < 10:
                break
            size, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
        masked = b1 & 0x80
        start = pos + head + (4 if masked else 0)
        if start + size > end:
            break
        payload = buf[start : start + size]
        if masked:
            mask = buf[start - 4 : start]
            keystream = (mask * (size // 4 + 1))[:size]
            payload = (int.from_bytes(payload, "big") ^ int.from_bytes(keystream, "big")).to_bytes(
                size, "big"
            )
        frames.append((b0 & 0x0F, bool(b0 & 0x80), payload))
        pos = start + size
    return frames, buf[pos:]


def sio_connect(auth: dict[str, Any]) -> bytes:
    """Socket.IO CONNECT to the default namespace with an ``auth`` payload."""
    return b"40" + orjson.dumps(auth)


def sio_event(name: str, data: Any, ack_id: int | None = None) -> bytes:
    """Socket.IO EVENT, with an ack id when an answer is expected."""
    ack = b"" if ack_id is None else str(ack_id).encode()
    return b"42" + ack + orjson.dumps([name, data])


@dataclass(frozen=True, slots=True)
class SioPacket:
    """A Socket.IO packet received inside an Engine.IO message."""

    kind: int  # 0 connect, 1 disconnect, 2 event, 3 ack, 4 connect_error
    ack_id: int | None
    data: Any


def parse_sio(text: bytes) -> SioPacket:
    """Parse ``text`` (an Engine.IO message without its leading ``4``).

    Default namespace only: the benchmark never uses another one.
    """
    kind = text[0] - ord("0")
    pos, end = 1, len(text)
    while pos < end and 0x30 <= text[pos] <= 0x39:
        pos += 1
    ack_id = int(text[1:pos]) if pos > 1 else None
    data = orjson.loads(text[pos:]) if pos < end else None
    return SioPacket(kind, ack_id, data)


def probe(payload: bytes) -> tuple[int, int, int] | None:
    """``(phase, seq, published_ns)`` of a benchmark event frame, or ``None``."""
    found = PROBE.search(payload)  # a literal prefix: the regex engine skips ahead fast
    if found is None:
        return None
    return int(found[1]), int(found[2]), int(found[3])
