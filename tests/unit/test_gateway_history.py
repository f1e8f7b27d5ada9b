"""Recovery reads (fleetcast.gateway.rooms.history) over a fake stream reader."""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetcast.gateway.rooms import history
from fleetcast.protocol import keys


class FakeReader:
    def __init__(self, entries: list[tuple[str, dict[bytes, bytes]]]) -> None:
        self.entries = entries
        self.asked: list[tuple[str, str, int]] = []

    async def first_and_after(
        self, stream: str, since: str, count: int
    ) -> tuple[list[Any], list[Any]]:
        self.asked.append((stream, since, count))
        after = [
            e for e in self.entries if history.parse_offset(e[0]) > history.parse_offset(since)
        ]
        return self.entries[:1], after[:count]


def entry(offset: str, event_id: str = "e") -> tuple[str, dict[bytes, bytes]]:
    envelope = {"event_id": event_id, "event_type": "incident_created", "organization_id": "o1"}
    return offset, {keys.HISTORY_FIELD.encode(): json.dumps(envelope).encode()}


def test_parse_offset() -> None:
    assert history.parse_offset("1732550400000-3") == (1732550400000, 3)
    for bad in ("", "1", "1-", "-1", "a-b", "1-2-3", 12, None, "1-2 "):
        with pytest.raises(history.OffsetError):
            history.parse_offset(bad)


def test_gap_rule() -> None:
    assert not history.is_gap((5, 0), (5, 0))
    assert not history.is_gap((5, 1), (5, 0))  # the very next entry is still there
    assert history.is_gap((5, 2), (5, 0))
    assert history.is_gap((6, 0), (5, 0))
    assert not history.is_gap((4, 0), (5, 0))


async def test_read_since_is_exclusive_and_ordered() -> None:
    reader = FakeReader([entry("1-0", "a"), entry("2-0", "b"), entry("3-0", "c")])
    got = await history.read_since(reader, "org:o1", "1-0")
    assert [(offset, env["event_id"]) for offset, env in got.entries] == [
        ("2-0", "b"),
        ("3-0", "c"),
    ]
    assert got.complete
    assert got.last == (3, 0)
    assert reader.asked[0][0] == keys.history_stream("org:o1")


async def test_trimmed_history_is_a_gap() -> None:
    got = await history.read_since(FakeReader([entry("5-0"), entry("6-0")]), "org:o1", "2-0")
    assert not got.complete
    assert len(got.entries) == 2


async def test_missing_stream_is_a_gap() -> None:
    got = await history.read_since(FakeReader([]), "org:o1", "2-0")
    assert (got.complete, got.entries) == (False, ())


async def test_unreadable_entries_are_skipped() -> None:
    reader = FakeReader(
        [entry("1-0"), ("2-0", {b"e": b"not json"}), ("3-0", {b"x": b"{}"}), entry("4-0")]
    )
    got = await history.read_since(reader, "org:o1", "1-0")
    assert [offset for offset, _ in got.entries] == ["4-0"]
