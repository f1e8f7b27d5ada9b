"""Recovery from a room's history stream (the consumer XADDs, we XRANGE).

Stream entry ids are the offsets clients hold. A client that subscribes with
``since`` gets every entry after it, in order; the answer is complete unless
the stream no longer reaches back to the entry right after ``since`` (it was
trimmed past it, or expired).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from fleetcast.protocol import keys

OFFSET_PATTERN: Final = re.compile(r"(\d{1,20})-(\d{1,20})")
#: One read covers a whole stream (MAXLEN is approximate, so leave headroom).
READ_COUNT: Final = keys.HISTORY_MAXLEN * 2

Offset = tuple[int, int]


class OffsetError(ValueError):
    """A ``since`` that is not a stream id."""


def parse_offset(text: object) -> Offset:
    if not isinstance(text, str):
        raise OffsetError("since must be a string offset")
    match = OFFSET_PATTERN.fullmatch(text)
    if match is None:
        raise OffsetError("since is not an offset this server gave out")
    return int(match.group(1)), int(match.group(2))


def is_gap(first: Offset, since: Offset) -> bool:
    """True when entries between ``since`` and the stream's first entry may be lost."""
    return first > (since[0], since[1] + 1)


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a room's history holds after ``since``: (offset, envelope) in order."""

    entries: Sequence[tuple[str, Mapping[str, Any]]]
    complete: bool

    @property
    def last(self) -> Offset | None:
        return parse_offset(self.entries[-1][0]) if self.entries else None


class StreamReader(Protocol):
    """The two XRANGE reads recovery needs, done atomically (one MULTI)."""

    async def first_and_after(
        self, stream: str, since: str, count: int
    ) -> tuple[list[Any], list[Any]]: ...


async def read_since(reader: StreamReader, room_name: str, since: str) -> Recovery:
    """Entries of ``room_name`` after ``since``; raises OffsetError for a bad offset."""
    since_offset = parse_offset(since)
    first, after = await reader.first_and_after(keys.history_stream(room_name), since, READ_COUNT)
    if not first:
        return Recovery((), complete=False)
    complete = not is_gap(parse_offset(_text(first[0][0])), since_offset)
    entries = [(_text(entry_id), env) for entry_id, fields in after if (env := _envelope(fields))]
    return Recovery(entries, complete and len(after) < READ_COUNT)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _envelope(fields: Mapping[Any, Any]) -> Mapping[str, Any] | None:
    """The envelope of one entry, or None for an entry the gateway cannot read."""
    raw = fields.get(keys.HISTORY_FIELD.encode(), fields.get(keys.HISTORY_FIELD))
    if raw is None:
        return None
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) and isinstance(doc.get("event_type"), str) else None
