"""Just enough of Centrifugo's client protocol (JSON over WebSocket) to be a client.

Pure byte functions, no I/O, beside :mod:`bench.loadgen.codec` (WebSocket
framing and Socket.IO). Centrifugo's JSON protocol sends commands as JSON
objects with an ``id`` and gets replies with the same ``id``; several
commands or replies may share one WebSocket frame, one JSON object per line.
Server pushes (publications) have no ``id``; an empty object ``{}`` is the
server's ping, answered with ``{}`` when the connect reply asked for pongs.

Benchmark rooms map to channels of one namespace: room ``channel:ch-1:org:o``
is channel ``rooms:channel:ch-1:org:o`` (the namespace is what comes before
the first ``:``; the rest is the room name unchanged).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Final

import orjson

#: The namespace every benchmark channel lives in (bench/servers.py configures it).
NAMESPACE: Final = "rooms"
#: Where Centrifugo serves its bidirectional WebSocket transport.
WS_PATH: Final = "/connection/websocket"
#: A publication push starts with this (Centrifugo writes ``push`` first).
PUSH_PREFIX: Final = b'{"push"'


def channel(room: str) -> str:
    """The Centrifugo channel of a benchmark room."""
    return f"{NAMESPACE}:{room}"


def upgrade_request(host: str, port: int, path: str = WS_PATH) -> bytes:
    """The HTTP/1.1 request that opens Centrifugo's WebSocket (no query string)."""
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {path} HTTP/1.1\r\n"
        f"Host: {host}:{port}\r\n"
        "Upgrade: websocket\r\n"
        "Connection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\n"
        "Sec-WebSocket-Version: 13\r\n"
        "\r\n"
    ).encode()


def connect_command(token: str, command_id: int = 1) -> bytes:
    """The first command of a connection: authenticate with a connection JWT."""
    return orjson.dumps({"id": command_id, "connect": {"token": token}})


def subscribe_commands(channels: Iterable[str], first_id: int = 2) -> tuple[bytes, list[int]]:
    """Subscribe commands for ``channels`` in one frame (one per line) and their ids."""
    ids, lines = [], []
    for command_id, name in enumerate(channels, start=first_id):
        ids.append(command_id)
        lines.append(orjson.dumps({"id": command_id, "subscribe": {"channel": name}}))
    return b"\n".join(lines), ids


PONG: Final = b"{}"


@dataclass(frozen=True, slots=True)
class Reply:
    """One line of a server frame: a reply (``id`` set), a push, or a ping (neither)."""

    command_id: int | None
    error: dict[str, Any] | None
    body: dict[str, Any]

    @property
    def is_ping(self) -> bool:
        return self.command_id is None and not self.body


def lines(payload: bytes) -> list[bytes]:
    """The JSON objects of one server frame (newline-delimited when batched)."""
    if b"\n" not in payload:
        return [payload]
    return [line for line in payload.split(b"\n") if line]


def parse(line: bytes) -> Reply:
    """Parse one line of a server frame (a reply, a push or the ``{}`` ping)."""
    doc = orjson.loads(line)
    if not isinstance(doc, dict):
        raise ValueError(f"not a Centrifugo reply: {line[:80]!r}")
    command_id = doc.pop("id", None)
    error = doc.pop("error", None)
    return Reply(int(command_id) if command_id is not None else None, error, doc)
