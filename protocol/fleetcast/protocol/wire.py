"""The Redis pub/sub wire format between the consumer and the gateways: its one author.

One pub/sub message carries one or more events of one org (the consumer
publishes per org and per batch, so a burst costs one message, not one per
event). JSON, versioned, never pickle::

    {"v": 1, "org": "org-42", "seq": 4711, "t": 1732550400000, "events": [
        {"rooms": ["channel:ch-3:org:org-42", "org:org-42"],
         "offsets": {"channel:ch-3:org:org-42": "1732550400000-0", ...},
         "event": {"event_id": ..., "event_type": ..., "organization_id": ...,
                   "occurred_at": ..., "data": {...}}}]}

``seq`` numbers the org's messages (1, 2, 3, ... per org, kept in
:func:`fleetcast.protocol.keys.org_sequence`): a gap or a restart of the count
tells a gateway it missed messages. ``t`` is the Redis clock (milliseconds)
when the message was made. Both are absent in messages of tools that publish
without a sequence (tests, benchmarks).

An item may also carry ``"tp"``, the W3C ``traceparent`` of the consumer's
span of that event (only for an event it traced: common/tracing.py), between
``rooms`` and ``offsets``. Gateways parent their delivery span on it; it is
never part of what a client receives (the client payload is built from
``event``).

``rooms`` are full room names in routing order. ``offsets`` holds the history
stream id of the event in each room that keeps history (a room without
history, such as the fleet room, is absent). ``event`` is the envelope as it
came from Kafka. A gateway refuses any other version loudly (a mixed-version
rollout must not deliver garbage).

The bytes are made from the templates below and nowhere else. The stream
ids exist only once the consumer's script has XADDed the event, inside
Redis, so the script fills them in: the consumer packs each route's
:func:`item_pieces` and each org's :func:`message_head` once, passes them
and :data:`ITEM_SEPARATOR` / :data:`MESSAGE_TAIL` to the script, and the
script only splices ids between pieces. :func:`encode` builds a message from
the same templates in Python (for tools and tests), and :func:`decode` reads
what either wrote.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

VERSION: Final = 1

#: Between a sequenced message's ``seq`` and its ``t``, and between ``t`` and its items.
MESSAGE_TIME: Final = b',"t":'
MESSAGE_EVENTS: Final = b',"events":['

#: Closes an item and opens the next one's place in the message.
ITEM_SEPARATOR: Final = b"},"
#: Closes the last item, the ``events`` list and the message.
MESSAGE_TAIL: Final = b"}]}"


class WireError(ValueError):
    """A pub/sub message this gateway cannot read."""


@dataclass(frozen=True, slots=True)
class RoutedEvent:
    """One event with its target rooms and its offset in each room's history."""

    rooms: tuple[str, ...]
    offsets: Mapping[str, str]
    event: Mapping[str, Any]
    #: The consumer's span of this event as a W3C traceparent (None: not traced).
    traceparent: str | None = None


@dataclass(frozen=True, slots=True)
class Message:
    """One pub/sub message: an org's events, and (when sequenced) its number and time."""

    org: str
    events: list[RoutedEvent]
    seq: int | None = None
    time_ms: int | None = None


# --- the templates ------------------------------------------------------------------


def message_head(org: str, *, sequenced: bool = True) -> bytes:
    """A message up to its ``seq`` value (``{"v":1,"org":"<org>","seq":``).

    A sequenced message goes on with the number, :data:`MESSAGE_TIME`, the
    time and :data:`MESSAGE_EVENTS`; an unsequenced one's head ends at its
    ``"events":[``.
    """
    org_json = orjson.dumps(org)
    if sequenced:
        return b'{"v":%d,"org":%b,"seq":' % (VERSION, org_json)
    return b'{"v":%d,"org":%b,"events":[' % (VERSION, org_json)


def item_pieces(
    rooms: Sequence[str], history: Sequence[str], traceparent: str | None = None
) -> list[bytes]:
    """An item cut where the stream ids of its ``history`` rooms go, up to its envelope.

    ``len(history) + 1`` pieces: ``piece[0] id[0] piece[1] ... id[k-1] piece[k]``,
    then the envelope's JSON, then :data:`ITEM_SEPARATOR` or :data:`MESSAGE_TAIL`.
    A ``traceparent`` goes into the first piece (the consumer packs a traced
    event's pieces for it alone; an untraced one's are shared by its route).
    """
    head = b'{"rooms":' + orjson.dumps(list(rooms))
    if traceparent is not None:
        head += b',"tp":' + orjson.dumps(traceparent)
    head += b',"offsets":{'
    if not history:
        return [head + b'},"event":']
    names = [orjson.dumps(room) for room in history]
    pieces = [head + names[0] + b':"']
    pieces += [b'",' + name + b':"' for name in names[1:]]
    return [*pieces, b'"},"event":']


# --- whole messages -------------------------------------------------------------------


def encode(
    org: str, batch: Sequence[RoutedEvent], *, seq: int | None = None, time_ms: int = 0
) -> bytes:
    """A message of ``batch``, made from the templates as the consumer's script makes it."""
    head = message_head(org, sequenced=seq is not None)
    if seq is not None:
        head += b"%d%b%d%b" % (seq, MESSAGE_TIME, time_ms, MESSAGE_EVENTS)
    if not batch:
        return head + b"]}"
    parts = [head]
    for n, item in enumerate(batch, 1):
        pieces = item_pieces(item.rooms, list(item.offsets), item.traceparent)
        parts.append(pieces[0])
        for offset, piece in zip(item.offsets.values(), pieces[1:], strict=True):
            parts += [offset.encode(), piece]
        parts.append(orjson.dumps(item.event))
        parts.append(MESSAGE_TAIL if n == len(batch) else ITEM_SEPARATOR)
    return b"".join(parts)


def decode(raw: bytes | str) -> tuple[str, list[RoutedEvent]]:
    """Parse one pub/sub message into (org, events); :class:`WireError` if unreadable."""
    message = decode_message(raw)
    return message.org, message.events


def decode_message(raw: bytes | str) -> Message:
    """Parse one pub/sub message; :class:`WireError` if unreadable."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise WireError(
            f"unsupported wire version {doc.get('v') if isinstance(doc, dict) else None!r}"
        )
    try:
        org = doc["org"]
        batch = [
            RoutedEvent(
                tuple(item["rooms"]), item.get("offsets") or {}, item["event"], item.get("tp")
            )
            for item in doc["events"]
        ]
    except (KeyError, TypeError) as exc:
        raise WireError(f"malformed message: {exc!r}") from None
    seq, time_ms = doc.get("seq"), doc.get("t")
    if not (_count(seq) and _count(time_ms)):
        raise WireError(f"malformed message: seq {seq!r}, t {time_ms!r}")
    return Message(org, batch, seq, time_ms)


def _count(value: object) -> bool:
    """None or a non-negative integer (bool is not one)."""
    return value is None or (type(value) is int and value >= 0)
