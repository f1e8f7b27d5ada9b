"""The fault suite's counting rules (tests.harness.counting): pure, no server."""

from __future__ import annotations

from tests.harness.counting import Record, outstanding, tally, totals
from tests.harness.traffic import Produced

ORG = "org:org-a"
CHANNEL = "channel:ch-1:org:org-a"
OTHER = "channel:ch-2:org:org-a"


def record(armed_at: float | None = 10.0) -> Record:
    return Record("c0", frozenset({ORG, CHANNEL}), armed_at=armed_at)


def ledger(**events: tuple[float, frozenset[str]]) -> dict[str, Produced]:
    return {event_id: Produced(at, rooms) for event_id, (at, rooms) in events.items()}


def test_only_events_of_its_rooms_after_it_was_armed_are_expected() -> None:
    produced = ledger(
        early=(9.0, frozenset({ORG})),  # before the client was in its rooms
        mine=(11.0, frozenset({CHANNEL, OTHER})),
        elsewhere=(12.0, frozenset({OTHER})),
    )
    counts = tally(produced, record(), 0.0)
    assert (counts.expected, counts.lost) == (1, ("mine",))


def test_a_delivered_event_is_not_lost_through_whichever_room_it_came() -> None:
    produced = ledger(a=(11.0, frozenset({CHANNEL})), b=(12.0, frozenset({ORG, CHANNEL})))
    client = record()
    client.deliver("a", 11.5, "channel:ch-1")
    client.deliver("b", 12.5, "org")
    counts = tally(produced, client, 0.0)
    assert (counts.expected, counts.delivered, counts.lost) == (2, 2, ())


def test_an_announcement_covers_events_of_its_room_handed_to_kafka_before_it() -> None:
    produced = ledger(
        before=(11.0, frozenset({CHANNEL})),
        after=(13.0, frozenset({CHANNEL})),
        other_room=(11.0, frozenset({ORG})),
    )
    client = record()
    client.announce(CHANNEL, 12.0)
    counts = tally(produced, client, 0.0)
    assert counts.announced == 1
    assert sorted(counts.lost) == ["after", "other_room"]


def test_a_room_resumed_without_offset_is_kept_apart_from_lost_and_announced() -> None:
    produced = ledger(gap=(11.0, frozenset({CHANNEL})))
    client = record()
    client.blind(CHANNEL, 12.0)
    counts = tally(produced, client, 0.0)
    assert (counts.unresumable, counts.announced, counts.lost) == (1, 0, ())


def test_duplicates_count_every_extra_copy_and_which_came_through_another_room() -> None:
    produced = ledger(a=(11.0, frozenset({ORG, CHANNEL})), b=(12.0, frozenset({CHANNEL})))
    client = record()
    for at, room in ((11.1, "channel:ch-1"), (11.2, "org"), (11.3, "channel:ch-1")):
        client.deliver("a", at, room)
    client.deliver("b", 12.1, "channel:ch-1")
    client.deliver("b", 12.2, "channel:ch-1")
    counts = tally(produced, client, 0.0)
    assert (counts.duplicates, counts.cross_room) == (3, 1)


def test_an_event_of_a_room_the_client_is_not_in_is_misrouted() -> None:
    produced = ledger(foreign=(11.0, frozenset({"org:org-b"})))
    client = record()
    client.deliver("foreign", 11.5, "org")
    client.deliver("not-ours", 11.5, "org")  # not in the ledger: a failed send, ignored
    assert tally(produced, client, 0.0).misrouted == 1


def test_recovery_is_the_slowest_client_to_get_an_event_handed_to_kafka_after_the_fault() -> None:
    produced = ledger(old=(19.0, frozenset({ORG})), new=(21.0, frozenset({ORG})))
    fast, slow = record(), record()
    fast.deliver("old", 20.5, "org")  # delivered after the fault, but handed over before it
    fast.deliver("new", 21.2, "org")
    slow.deliver("new", 23.0, "org")
    result = totals(produced, [fast, slow], fault_end=20.0)
    assert result.recovery_s == 3.0
    assert result.lost == 1  # slow never got "old"
    assert result.clients_with_loss == 1


def test_recovery_is_none_while_some_client_got_nothing_fresh() -> None:
    produced = ledger(new=(21.0, frozenset({ORG})))
    got, starved = record(), record()
    got.deliver("new", 21.1, "org")
    assert totals(produced, [got, starved], fault_end=20.0).recovery_s is None
    assert totals(produced, [], fault_end=20.0).recovery_s is None


def test_a_client_never_armed_expects_nothing() -> None:
    produced = ledger(a=(11.0, frozenset({ORG})))
    assert tally(produced, record(armed_at=None), 0.0).expected == 0


def test_outstanding_counts_what_no_client_received_or_was_told_about() -> None:
    produced = ledger(a=(11.0, frozenset({ORG})), b=(12.0, frozenset({CHANNEL})))
    first, second = record(), record()
    first.deliver("a", 11.1, "org")
    second.announce(ORG, 13.0)
    assert outstanding(produced, [first, second]) == 2  # b, twice


ASSET = "asset:unit-01:org:org-a"


def test_a_position_superseded_by_a_later_one_delivered_is_not_lost() -> None:
    # A replay sends each asset's latest position only: p1 is superseded by p2.
    produced = {
        "p1": Produced(11.0, frozenset({ASSET}), "org-a/unit-01"),
        "p2": Produced(11.2, frozenset({ASSET}), "org-a/unit-01"),
        "p3": Produced(11.4, frozenset({ASSET}), "org-a/unit-01"),
    }
    client = Record("c0", frozenset({ASSET}), armed_at=10.0)
    client.deliver("p2", 12.0, "asset:unit-01")
    counts = tally(produced, client, 0.0)
    # p3 came after the newest delivered: still missing, so lost.
    assert (counts.expected, counts.delivered, counts.superseded) == (3, 1, 1)
    assert counts.lost == ("p3",)


def test_only_positions_are_superseded() -> None:
    produced = {
        "alert": Produced(11.0, frozenset({ASSET})),
        "p2": Produced(11.2, frozenset({ASSET}), "org-a/unit-01"),
    }
    client = Record("c0", frozenset({ASSET}), armed_at=10.0)
    client.deliver("p2", 12.0, "asset:unit-01")
    counts = tally(produced, client, 0.0)
    assert (counts.superseded, counts.lost) == (0, ("alert",))


def test_a_loss_is_described_by_type_room_time_and_client() -> None:
    produced = {"e1": Produced(11.0, frozenset({CHANNEL}), None, "alert_created")}
    client = record()
    client.reconnects.append((10.5, "http://gw1"))
    (detail,) = totals(produced, [client], 10.0).lost_detail
    assert detail.startswith("e1 alert_created ['channel:ch-1:org:org-a'] handed to Kafka at +1.00")
    assert "reconnects at [0.5]" in detail
