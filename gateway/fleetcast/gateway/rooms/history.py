"""Reading rooms' history streams (the consumer XADDs, we XRANGE): what came after an offset.

Stream entry ids are the offsets clients hold. A read returns every entry
after ``since``, in order, and whether that is *complete*: whether the stream
still holds everything published after ``since``.

- For an offset a client (or this gateway) got from an event, the stream
  must reach back to the entry right after it: a stream trimmed past it, or
  gone (expired, or a Redis that lost its data), is not complete.
- For a *baseline* (a room that had no event since it got its first local
  member: the recovery starts from the moment it opened) the question is
  whether anything after that moment was ever trimmed: Redis records the
  greatest id it ever deleted (``max-deleted-entry-id``), and a stream that
  does not exist simply had no events, unless the data was lost.

Several rooms are read in one MULTI, so an event kept in two of them is in
both reads or in neither (the replay merges them without doubling).
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import orjson

from fleetcast.protocol import keys

OFFSET_PATTERN: Final = re.compile(r"(\d{1,20})-(\d{1,20})")
#: One read covers a whole stream (MAXLEN is approximate, so leave headroom).
READ_COUNT: Final = keys.HISTORY_MAXLEN * 2
#: The greatest sequence part of a stream id.
MAX_SEQ: Final = 2**64 - 1
#: Offsets given out are Redis stream ids: milliseconds since the epoch. One
#: from before 2020 or far in the future was never ours.
EARLIEST_MS: Final = 1_577_836_800_000
FUTURE_SLACK_MS: Final = 24 * 3600 * 1000

Offset = tuple[int, int]
Entry = tuple[str, Mapping[str, Any]]


class OffsetError(ValueError):
    """A ``since`` that is not a stream id this server could have given out."""


def parse_offset(text: object) -> Offset:
    if not isinstance(text, str):
        raise OffsetError("since must be a string offset")
    match = OFFSET_PATTERN.fullmatch(text)
    if match is None:
        raise OffsetError("since is not an offset this server gave out")
    ms, seq = int(match.group(1)), int(match.group(2))
    if seq > MAX_SEQ:
        raise OffsetError("since is not an offset this server gave out")
    return ms, seq


def check_offset(text: object, now_ms: int | None = None) -> Offset:
    """:func:`parse_offset`, refusing times no offset of ours can have (before 2020, far ahead)."""
    offset = parse_offset(text)
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if not EARLIEST_MS <= offset[0] <= now_ms + FUTURE_SLACK_MS:
        raise OffsetError("since is not an offset this server gave out (its time is off)")
    return offset


def baseline(opened_ms: int, skew_ms: int) -> str:
    """The offset a room with no delivered event recovers from: when it opened, less skew."""
    return f"{max(0, opened_ms - skew_ms)}-0"


def text(offset: Offset) -> str:
    return f"{offset[0]}-{offset[1]}"


@dataclass(frozen=True, slots=True)
class Recovery:
    """What a room's history holds after ``since``: (offset, envelope) in order."""

    entries: Sequence[Entry]
    complete: bool

    @property
    def last(self) -> Offset | None:
        return parse_offset(self.entries[-1][0]) if self.entries else None


@dataclass(frozen=True, slots=True)
class StreamState:
    """What XINFO STREAM says of a stream: its first entry and the greatest id ever deleted."""

    first: Offset | None
    max_deleted: Offset


def is_complete(state: StreamState | None, since: Offset, *, from_baseline: bool) -> bool:
    """Whether the stream still holds everything published after ``since`` (module docstring)."""
    if state is None:  # no such stream: no events, or lost ones
        return from_baseline
    if from_baseline:
        return state.max_deleted <= since
    return state.first is None or state.first <= (since[0], since[1] + 1)


class StreamReader(Protocol):
    """The reads recovery needs, all in one MULTI (redis/streams.py)."""

    async def ranges(
        self, requests: Sequence[tuple[str, str]], count: int
    ) -> list[tuple[Mapping[Any, Any] | None, list[Any]]]:
        """Per (stream, since): its XINFO STREAM (None if it does not exist) and the
        entries after ``since`` (at most ``count``)."""
        ...


async def read_many(
    reader: StreamReader,
    since: Mapping[str, str],
    *,
    baselines: frozenset[str] = frozenset(),
    lost: bool = False,
) -> dict[str, Recovery]:
    """Entries of each room after its offset; rooms in ``baselines`` start from a baseline.

    ``lost``: Redis lost its data since (a reset of the org's sequence), so a
    missing stream is a loss even for a baseline.
    """
    names = list(since)
    requests = [(keys.history_stream(name), since[name]) for name in names]
    replies = await reader.ranges(requests, READ_COUNT)
    recoveries = {}
    for name, (info, raw) in zip(names, replies, strict=True):
        complete = is_complete(
            stream_state(info),
            parse_offset(since[name]),
            from_baseline=name in baselines and not lost,
        )
        entries = [(_text(entry_id), env) for entry_id, fields in raw if (env := _envelope(fields))]
        recoveries[name] = Recovery(entries, complete and len(raw) < READ_COUNT)
    return recoveries


async def read_since(reader: StreamReader, room_name: str, since: str) -> Recovery:
    """Entries of one room after ``since``; raises OffsetError for a bad offset."""
    parse_offset(since)
    return (await read_many(reader, {room_name: since}))[room_name]


def stream_state(info: Mapping[Any, Any] | None) -> StreamState | None:
    """XINFO STREAM's reply (as redis-py parses it) as a :class:`StreamState`."""
    if info is None:
        return None
    first_entry = _get(info, "first-entry")
    first = parse_offset(_text(first_entry[0])) if first_entry else None
    deleted = _get(info, "max-deleted-entry-id")
    return StreamState(first, parse_offset(_text(deleted)) if deleted else (0, 0))


def _get(info: Mapping[Any, Any], name: str) -> Any:
    return info.get(name, info.get(name.encode()))


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
