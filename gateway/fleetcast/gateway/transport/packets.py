"""Socket.IO packets as the gateway sends them: encoded once, shared by every recipient.

python-socketio's own emit path encodes per call and per recipient; fleetcast
encodes an event once per (event, room) into a :class:`Frame` and offers the
same object to every connection of the room.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from fleetcast.protocol import receipts

#: Socket.IO packet type EVENT on the default namespace, as text.
_EVENT_PREFIX = "2"


def encode_event(name: str, payload: Any) -> str:
    """A Socket.IO EVENT packet (``2["name",payload]``) for the default namespace."""
    return _EVENT_PREFIX + orjson.dumps([name, payload]).decode()


@dataclass(slots=True, eq=False)
class Frame:
    """One encoded Socket.IO event, shared by every recipient in one room.

    ``text`` is the Socket.IO packet (``2["event_type",{...}]``), encoded once
    per (event, room). ``offset`` (the room-history id) and ``event_id`` let
    a recovery drop live events it has already sent. ``wire`` is its
    websocket frame, built by the first websocket recipient and written as
    is to the others (the packet's encodings are the transport's business).
    ``tag`` marks a priority event that may be receipted (rooms/receipting.py).
    """

    text: str
    priority: bool
    offset: str | None = None
    wire: bytes | None = None
    event_id: str | None = None
    tag: receipts.Tag | None = None
