"""Several rooms' histories merged (rooms/merging.py): each event once, each room's order kept."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from fleetcast.gateway.rooms import merging
from tests.unit.streams_fake import T, envelope

ROOMS = ("channel:c:org:o1", "incident:i:org:o1", "user:u:org:o1", "org:o1")


def test_an_event_in_two_rooms_comes_once_with_both_offsets_in_routing_order() -> None:
    merged = merging.merge(
        {
            "org:o1": [(f"{T}-0", envelope("a")), (f"{T}-1", envelope("b"))],
            "channel:c:org:o1": [(f"{T}-0", envelope("b"))],
        }
    )
    assert [r.event["event_id"] for r in merged] == ["a", "b"]
    assert merged[1].rooms == ("channel:c:org:o1", "org:o1")
    assert merged[1].offsets == {"channel:c:org:o1": f"{T}-0", "org:o1": f"{T}-1"}


def test_ids_of_different_streams_in_one_millisecond_do_not_reorder_a_room() -> None:
    """Each stream numbers its own entries from 0: g (org 100-2) must not pass e (org 100-3)."""
    merged = merging.merge(
        {
            "org:o1": [(f"{T}-2", envelope("g")), (f"{T}-3", envelope("e"))],
            "channel:c:org:o1": [(f"{T}-0", envelope("e"))],
        }
    )
    assert [r.event["event_id"] for r in merged] == ["g", "e"]


@st.composite
def histories(draw: st.DrawFn) -> dict[str, list[tuple[str, dict[str, object]]]]:
    """A publish order of events, each kept in some rooms; streams number their own entries."""
    count = draw(st.integers(0, 30))
    per_room: dict[str, list[tuple[str, dict[str, object]]]] = {room: [] for room in ROOMS}
    ms = T
    for n in range(count):
        ms += draw(st.integers(0, 1))  # several events often share a millisecond
        for room in draw(st.sets(st.sampled_from(ROOMS), min_size=1)):
            seq = sum(1 for offset, _ in per_room[room] if offset.startswith(f"{ms}-"))
            per_room[room].append((f"{ms}-{seq}", envelope(f"e{n}")))
    return per_room


@given(histories())
def test_merged_events_come_once_and_in_every_rooms_order(per_room: dict[str, list]) -> None:  # type: ignore[type-arg]
    merged = merging.merge(per_room)
    ids = [r.event["event_id"] for r in merged]
    assert len(ids) == len(set(ids))
    assert set(ids) == {env["event_id"] for entries in per_room.values() for _, env in entries}
    position = {event_id: n for n, event_id in enumerate(ids)}
    for entries in per_room.values():
        in_room = [position[env["event_id"]] for _, env in entries]
        assert in_room == sorted(in_room)
