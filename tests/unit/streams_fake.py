"""An in-memory stand-in for the Redis side of recovery (history.StreamReader, SequenceReader).

Streams are lists of (offset, fields); ``trim`` forgets the oldest entries
and records the greatest id deleted, as Redis does; ``during_read`` runs
while a read is "in flight", so tests can make live events race it.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from fleetcast.gateway.rooms import history
from fleetcast.protocol import keys

#: A realistic stream time (ms): offsets of ours are never before 2020.
T = 1_732_550_400_000


def off(n: int, seq: int = 0) -> str:
    return f"{T + n}-{seq}"


def envelope(event_id: str, org: str = "o1", **data: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": "incident_updated", "organization_id": org,
            "occurred_at": "2026-11-25T18:00:00Z", "data": data}  # fmt: skip


class FakeStreams:
    def __init__(self) -> None:
        self.streams: dict[str, list[tuple[str, dict[bytes, bytes]]]] = {}
        self.deleted: dict[str, str] = {}
        self.counters: dict[str, int] = {}
        self.during_read: Callable[[], object] | None = None
        self.reads: list[list[tuple[str, str]]] = []
        self.fail = 0

    def add(self, room: str, offset: str, event: Mapping[str, Any]) -> None:
        fields = {keys.HISTORY_FIELD.encode(): json.dumps(event).encode()}
        self.streams.setdefault(keys.history_stream(room), []).append((offset, fields))

    def trim(self, room: str, keep: int) -> None:
        stream = self.streams[keys.history_stream(room)]
        gone, self.streams[keys.history_stream(room)] = stream[:-keep], stream[-keep:]
        if gone:
            self.deleted[keys.history_stream(room)] = gone[-1][0]

    async def ranges(
        self, requests: Sequence[tuple[str, str]], count: int
    ) -> list[tuple[Mapping[Any, Any] | None, list[Any]]]:
        self.reads.append(list(requests))
        if self.fail:
            self.fail -= 1
            raise ConnectionError("redis away")
        if self.during_read is not None:
            during, self.during_read = self.during_read, None
            during()
        out: list[tuple[Mapping[Any, Any] | None, list[Any]]] = []
        for stream, since in requests:
            entries = self.streams.get(stream)
            if not entries:
                out.append((None, []))
                continue
            info = {"first-entry": (entries[0][0], entries[0][1]),
                    "max-deleted-entry-id": self.deleted.get(stream, "0-0")}  # fmt: skip
            start = history.parse_offset(since)
            after = [e for e in entries if history.parse_offset(e[0]) > start]
            out.append((info, after[:count]))
        return out

    async def sequences(self, orgs: Sequence[str]) -> dict[str, int | None]:
        return {org: self.counters.get(org) for org in orgs}
