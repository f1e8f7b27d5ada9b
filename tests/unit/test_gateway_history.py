"""Recovery reads (rooms/history.py): what came after an offset, and whether that is all."""

from __future__ import annotations

import pytest

from fleetcast.gateway.rooms import history
from fleetcast.protocol import keys
from tests.unit.streams_fake import FakeStreams, T, envelope, off


def test_parse_offset() -> None:
    assert history.parse_offset("1732550400000-3") == (1732550400000, 3)
    for bad in ("", "1", "1-", "-1", "a-b", "1-2-3", 12, None, "1-2 ", f"1-{2**64}"):
        with pytest.raises(history.OffsetError):
            history.parse_offset(bad)


def test_an_offset_of_ours_has_a_plausible_time() -> None:
    now = T + 1000
    assert history.check_offset(off(5), now_ms=now) == (T + 5, 0)
    for not_ours in ("0-0", "5-1", f"{now + 2 * 24 * 3600 * 1000}-0"):
        with pytest.raises(history.OffsetError, match="time is off"):
            history.check_offset(not_ours, now_ms=now)


def test_completeness_from_an_offset_needs_the_entry_right_after_it() -> None:
    state = history.StreamState(first=(T + 5, 1), max_deleted=(T + 5, 0))
    assert history.is_complete(state, (T + 5, 0), from_baseline=False)
    assert not history.is_complete(state, (T + 4, 0), from_baseline=False)
    assert not history.is_complete(None, (T + 4, 0), from_baseline=False)  # gone: lost


def test_completeness_from_a_baseline_asks_whether_anything_after_it_was_trimmed() -> None:
    fresh = history.StreamState(first=(T + 50, 0), max_deleted=(0, 0))
    assert history.is_complete(fresh, (T, 0), from_baseline=True)  # created after it opened
    trimmed = history.StreamState(first=(T + 50, 0), max_deleted=(T + 10, 0))
    assert not history.is_complete(trimmed, (T, 0), from_baseline=True)
    assert history.is_complete(None, (T, 0), from_baseline=True)  # no events at all


async def test_read_since_is_exclusive_and_ordered() -> None:
    streams = FakeStreams()
    for n, name in enumerate("abc", 1):
        streams.add("org:o1", off(n), envelope(name))
    got = await history.read_since(streams, "org:o1", off(1))
    assert [(offset, env["event_id"]) for offset, env in got.entries] == [
        (off(2), "b"),
        (off(3), "c"),
    ]
    assert got.complete
    assert got.last == (T + 3, 0)
    assert streams.reads[0][0][0] == keys.history_stream("org:o1")


async def test_trimmed_history_is_a_gap() -> None:
    streams = FakeStreams()
    for n in range(1, 7):
        streams.add("org:o1", off(n), envelope(f"e{n}"))
    streams.trim("org:o1", keep=2)
    got = await history.read_since(streams, "org:o1", off(2))
    assert not got.complete
    assert len(got.entries) == 2


async def test_missing_stream_is_a_gap_and_a_lost_one_even_from_a_baseline() -> None:
    streams = FakeStreams()
    got = await history.read_since(streams, "org:o1", off(2))
    assert (got.complete, got.entries) == (False, [])
    base = {"org:o1": history.baseline(T, 0)}
    assert (await history.read_many(streams, base, baselines=frozenset(base)))["org:o1"].complete
    lost = await history.read_many(streams, base, baselines=frozenset(base), lost=True)
    assert not lost["org:o1"].complete


async def test_unreadable_entries_are_skipped() -> None:
    streams = FakeStreams()
    streams.add("org:o1", off(1), envelope("a"))
    streams.streams[keys.history_stream("org:o1")] += [
        (off(2), {b"e": b"not json"}),
        (off(3), {b"x": b"{}"}),
    ]
    streams.add("org:o1", off(4), envelope("d"))
    got = await history.read_since(streams, "org:o1", off(1))
    assert [offset for offset, _ in got.entries] == [off(4)]
