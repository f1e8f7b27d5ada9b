"""WebSocket frames a server writes (RFC 6455), built once and shared by every recipient.

A server's frames are never masked, so the bytes of one frame depend only on
its payload: the frame of an Engine.IO MESSAGE packet is built once per
(event, room) and the same ``bytes`` object is written to every websocket of
the room. No extension is negotiated on these connections (no
permessage-deflate), so no RSV bit is ever set. Pure functions, no I/O.
"""

from __future__ import annotations

import struct
from typing import Final

OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
_FIN: Final = 0x80

#: Engine.IO v4 packet type MESSAGE, as the first byte of a text packet.
EIO_MESSAGE: Final = b"4"

#: Close code 1000 (normal closure): what a server sends when it ends a connection.
CLOSE_NORMAL: Final = 1000


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
