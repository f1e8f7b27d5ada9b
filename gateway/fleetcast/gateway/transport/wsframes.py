"""WebSocket frames (RFC 6455): the server's, built once and shared; the clients', read.

A server's frames are never masked, so the bytes of one frame depend only on
its payload: the frame of an Engine.IO MESSAGE packet is built once per
(event, room) and the same ``bytes`` object is written to every websocket of
the room. No extension is negotiated on these connections (no
permessage-deflate), so no RSV bit is ever set, and a client frame with one
is a protocol error. Client frames are always masked. Pure functions, no I/O.
"""

from __future__ import annotations

import struct
from typing import Final

OP_CONTINUATION: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA
_FIN: Final = 0x80
_KNOWN_OPCODES: Final = frozenset({0x0, 0x1, 0x2, 0x8, 0x9, 0xA})

#: Engine.IO v4 packet type MESSAGE, as the first byte of a text packet.
EIO_MESSAGE: Final = b"4"

#: Close codes: normal closure, protocol error, message too big.
CLOSE_NORMAL: Final = 1000
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_TOO_BIG: Final = 1009

#: One client frame: (opcode, final, unmasked payload).
ClientFrame = tuple[int, bool, bytes]


class FrameError(Exception):
    """A client broke the protocol; ``code`` is the close code to answer with."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


def frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, unmasked frame holding ``payload``."""
    size = len(payload)
    first = _FIN | opcode
    if size < 126:
        header = bytes((first, size))
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 126, size)
    else:
        header = struct.pack("!BBQ", first, 127, size)
    return header + payload


def eio_message(socketio_packet: str) -> bytes:
    """The text frame of an Engine.IO MESSAGE carrying one encoded Socket.IO packet."""
    return frame(EIO_MESSAGE + socketio_packet.encode())


def eio_packet(encoded: str | bytes) -> bytes:
    """The frame of an encoded Engine.IO packet: text for str, binary for bytes."""
    if isinstance(encoded, bytes):
        return frame(encoded, OP_BINARY)
    return frame(encoded.encode())


def close(code: int = CLOSE_NORMAL) -> bytes:
    """A close frame with ``code`` and no reason text."""
    return frame(struct.pack("!H", code), OP_CLOSE)


def split_client_frames(buf: bytes, max_size: int) -> tuple[list[ClientFrame], bytes]:
    """The complete frames at the head of ``buf`` (unmasked), and the bytes left over.

    Raises :class:`FrameError` for an unmasked frame, an RSV bit, an unknown
    opcode, a fragmented or oversized control frame, or a payload over ``max_size``.
    """
    frames: list[ClientFrame] = []
    pos, end = 0, len(buf)
    while end - pos >= 2:
        first, second = buf[pos], buf[pos + 1]
        opcode, size, head = first & 0x0F, second & 0x7F, 2
        _check_header(first, second, opcode, size)
        if size == 126:
            if end - pos < 4:
                break
            size, head = int.from_bytes(buf[pos + 2 : pos + 4], "big"), 4
        elif size == 127:
            if end - pos < 10:
                break
            size, head = int.from_bytes(buf[pos + 2 : pos + 10], "big"), 10
        if size > max_size:
            raise FrameError(CLOSE_TOO_BIG, f"frame of {size} bytes (limit {max_size})")
        start = pos + head + 4
        if start + size > end:
            break
        frames.append(
            (opcode, bool(first & _FIN), unmask(buf[start - 4 : start], buf[start : start + size]))
        )
        pos = start + size
    return frames, buf[pos:]


def _check_header(first: int, second: int, opcode: int, size: int) -> None:
    if first & 0x70:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "RSV bit set: no extension was negotiated")
    if not second & 0x80:
        raise FrameError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
    if opcode not in _KNOWN_OPCODES:
        raise FrameError(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
    if opcode >= OP_CLOSE and (size > 125 or not first & _FIN):
        raise FrameError(CLOSE_PROTOCOL_ERROR, "control frames are final and short")


def unmask(mask: bytes, payload: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte ``mask`` repeated (RFC 6455 5.3), as one big integer."""
    size = len(payload)
    keystream = (mask * (size // 4 + 1))[:size]
    return (int.from_bytes(payload, "little") ^ int.from_bytes(keystream, "little")).to_bytes(
        size, "little"
    )
