"""The city storm's pure parts: latencies split by phase, loss, offsets kept for a resume."""

from __future__ import annotations

from bench.city import storm
from bench.city.client import Tally
from bench.city.run import City, Member
from bench.storm.client import ResumingClient

KILL, BACK = 1_000, 2_000


def test_latencies_go_to_the_phase_their_event_was_produced_in() -> None:
    sent = [10, 999, 1_000, 1_500, 1_999, 2_000, 5_000]
    values = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    phases = storm.split(sent, values, KILL, BACK)
    assert phases == {"before": [1.0, 2.0], "storm": [3.0, 4.0, 5.0], "after": [6.0, 7.0]}


def test_a_storm_that_never_ended_runs_to_the_end() -> None:
    phases = storm.split([10, 1_500, 9_000], [1.0, 2.0, 3.0], KILL, None)
    assert phases == {"before": [1.0], "storm": [2.0, 3.0], "after": []}


def test_missing_counts_each_clients_own_gaps() -> None:
    member = Member("token", ("fleet",))
    a, b = storm.CityClient(0, member, Tally()), storm.CityClient(1, member, Tally())
    a.seqs, b.seqs = {1, 2, 3}, {1, 3, 99}
    assert storm.missing({1, 2, 3}, [a, b]) == [0, 1]


def test_clients_alternate_between_the_gateways() -> None:
    city = City(
        name="t", consoles=4, field_units=6, assets=10, positions_per_s=1.0, hot_assets=1,
        incident_events_per_s=1.0, status_changes_per_s=1.0, alerts_per_min=1.0,
    )  # fmt: skip
    a, b = storm.build(city)
    assert [c.index for c in a.clients] == [0, 2, 4, 6, 8]
    assert [c.index for c in b.clients] == [1, 3, 5, 7, 9]
    assert sum(c.rooms == ("fleet",) for c in a.clients) == 2  # half the consoles each
    assert all(c.tally is a.tally for c in a.clients)


def test_only_the_phases_priority_events_are_counted() -> None:
    client = storm.CityClient(0, Member("token", ("asset:unit-1",)), Tally())
    client.phase = 7
    client._delivered(
        {"event_id": "e1", "event_type": "alert_created", "data": {"bph": 7, "bseq": 4}}
    )
    client._delivered(
        {"event_id": "e2", "event_type": "alert_created", "data": {"bph": 6, "bseq": 5}}
    )
    client._delivered(
        {"event_id": "e3", "event_type": "asset_position_updated", "data": {"bph": 7, "bseq": 6}}
    )
    client._delivered(
        {"event_id": "e1", "event_type": "alert_created", "data": {"bph": 7, "bseq": 4}}
    )
    assert client.seqs == {4}
    assert client.duplicates == 1


def test_a_resume_names_every_room_from_its_greatest_offset() -> None:
    client = ResumingClient(0, "token", rooms=("fleet", "asset:unit-1"))
    client._session({"rooms": ["org", "user:unit-1", "fleet", "asset:unit-1"]})
    client._delivered(
        {
            "room": "asset:unit-1",
            "offset": "20-1",
            "offsets": {"asset:unit-1": "20-1", "org": "21-4"},
        }
    )
    client._delivered({"room": "org", "offset": "19-9"})  # older: a replay, kept out
    client._delivered({"room": "org", "offsets": {"incident:inc-1": "30-0", "org": "30-1"}})
    assert client.offsets == {"asset:unit-1": "20-1", "org": "30-1"}  # not a room it is in
    assert client._auth()["since"] == {"fleet": None, "asset:unit-1": "20-1", "org": "30-1"}


def test_a_first_connect_names_no_rooms() -> None:
    assert "since" not in ResumingClient(0, "token", rooms=("fleet",))._auth()


def test_loss_is_sorted_by_whether_the_client_could_have_it_all() -> None:
    member = Member("token", ("fleet",))
    stayed = [storm.CityClient(1, member, Tally())]
    complete, gap, away = (storm.CityClient(i, member, Tally()) for i in (0, 2, 4))
    complete.recovered, gap.recovered = {"org": True}, {"org": False}
    groups = storm.sort_out([complete, gap, away], stayed, frozenset({0, 2}))
    assert groups == {"complete": [stayed[0], complete], "gap": [gap], "never back": [away]}
