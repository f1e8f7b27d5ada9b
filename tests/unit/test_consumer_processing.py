"""Kafka records -> routed events, dead letters and offsets (the pure core)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcast.consumer import processing
from fleetcast.protocol import events, routing

TABLE = processing.Router(routing.RoutingTable.default())


def prepare(records: list[Rec], router: processing.Router = TABLE, **options: Any) -> Any:
    return processing.prepare(processing.group(records), router, **options)


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = b"org-1"


def env(event_type: str, data: dict[str, Any], org: str = "org-1", event_id: str = "e") -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "event_type": event_type,
            "organization_id": org,
            "occurred_at": "2026-11-25T18:00:00Z",
            "data": data,
        }
    )


def test_a_poll_becomes_routed_events_dead_letters_and_next_offsets() -> None:
    batch = prepare(
        [
            Rec("fleet.incidents", 0, 10, env("incident_created", {"incident_id": "i-1"})),
            Rec("fleet.incidents", 0, 11, b"garbage"),
            Rec("fleet.assets", 2, 5, env("asset_position_updated", {"asset_id": "u-1"})),
        ]
    )
    assert [r.event_type for r in batch.routed] == ["incident_created", "asset_position_updated"]
    assert [(d.offset, d.reason) for d in batch.dead] == [(11, "not_json")]
    assert batch.offsets == {("fleet.incidents", 0): 12, ("fleet.assets", 2): 6}
    assert batch.consumed == {"fleet.incidents": 2, "fleet.assets": 1}
    assert len(batch) == 3


def test_the_fleet_room_keeps_no_history_and_positions_update_the_snapshot() -> None:
    (routed,) = prepare(
        [Rec("t", 0, 0, env("asset_position_updated", {"asset_id": "u-1", "lat": 1.5}))]
    ).routed
    assert routed.rooms == ("asset:u-1:org:org-1", "fleet:org:org-1")
    assert routed.history == ("asset:u-1:org:org-1",)
    assert (routed.route.snapshot, routed.route.asset_id) == ("position", "u-1")
    assert orjson.loads(routed.envelope_json)["data"] == {"asset_id": "u-1", "lat": 1.5}


def test_status_goes_to_the_status_snapshot_other_types_to_none() -> None:
    batch = prepare(
        [
            Rec("t", 0, 0, env("asset_status_changed", {"asset_id": "u-1", "status": "busy"})),
            Rec("t", 0, 1, env("alert_created", {"asset_id": "u-1"})),
        ]
    )
    assert [r.route.snapshot for r in batch.routed] == ["status", None]


def test_an_event_with_no_room_is_counted_not_published() -> None:
    batch = prepare([Rec("t", 0, 0, env("task_updated", {"task_id": "x"}))])
    assert (batch.routed, batch.dead, batch.unrouted) == ([], [], 1)
    assert batch.offsets == {("t", 0): 1}


def test_dead_letters_keep_the_record_and_the_reason() -> None:
    (dead,) = prepare([Rec("t", 1, 7, env("nope", {}), key=b"k")], max_event_bytes=10_000).dead
    assert (dead.topic, dead.partition, dead.offset, dead.key) == ("t", 1, 7, b"k")
    assert dead.reason == "unknown_type"
    assert dead.value == env("nope", {})


def test_oversized_uses_the_configured_limit() -> None:
    raw = env("incident_created", {"note": "x" * 500})
    (dead,) = prepare([Rec("t", 0, 0, raw)], max_event_bytes=300).dead
    assert dead.reason == "oversized"


def test_events_group_per_org_in_order() -> None:
    records = [
        Rec("t", 0, i, env("alert_created", {}, org=org, event_id=str(i)))
        for i, org in enumerate(["a", "b", "a", "a", "b"])
    ]
    groups = processing.by_org(prepare(records).routed)
    assert {org: [r.offset for r in items] for org, items in groups.items()} == {
        "a": [0, 2, 3],
        "b": [1, 4],
    }


def test_the_router_memo_gives_the_same_targets_and_stays_bounded() -> None:
    router = processing.Router(routing.RoutingTable.default(), max_entries=2)
    records = [
        Rec("t", 0, n, env("asset_position_updated", {"asset_id": f"u-{n % 3}"})) for n in range(9)
    ]
    routed = prepare(records, router).routed
    assert [r.rooms[0] for r in routed] == [f"asset:u-{n % 3}:org:org-1" for n in range(9)]
    assert len(router._memo) <= 2


# --- the fast path decides exactly as the strict decoder ----------------------------------

VALID: dict[str, Any] = {
    "event_id": "e-1",
    "event_type": "incident_updated",
    "organization_id": "org-1",
    "occurred_at": "2026-11-25T18:00:00Z",
    "data": {"incident_id": "i-1", "channel_id": "c-1", "asset_id": "u-1", "user_id": "p-1"},
}
#: Values that break a field in every way the strict decoder knows.
BAD_VALUES: list[Any] = [
    *(None, "", "x" * 300, 7, 1.5, True, [], ["c-1"], {}, "bad id!", "a:b"),
    *("yesterday", "2026-11-25T18:00:00", "2026-02-30T18:00:00Z", "2026-11-25T18:00:00.5Z"),
]


def mutations() -> st.SearchStrategy[dict[str, Any]]:
    """The valid envelope with one field, one data id, or the set of fields changed."""
    top = st.builds(
        lambda name, value: {**VALID, name: value},
        st.sampled_from(events.REQUIRED_FIELDS),
        st.sampled_from(BAD_VALUES),
    )
    ids = st.builds(
        lambda name, value: {**VALID, "data": {**VALID["data"], name: value}},
        st.sampled_from(events.ROOM_ID_KEYS),
        st.sampled_from(BAD_VALUES),
    )
    dropped = st.sampled_from(events.REQUIRED_FIELDS).map(
        lambda name: {k: v for k, v in VALID.items() if k != name}
    )
    extra = st.just({**VALID, "extra": 1})
    swapped = st.sampled_from(events.REQUIRED_FIELDS).map(
        lambda name: {**{k: v for k, v in VALID.items() if k != name}, "other": VALID[name]}
    )
    return st.one_of(top, ids, dropped, extra, swapped, st.just(VALID))


def outcome(batch: processing.Batch) -> tuple[Any, ...]:
    routed = [(r.rooms, r.envelope_json) for r in batch.routed]
    return routed, [d.reason for d in batch.dead], batch.unrouted


@given(mutations())
@settings(max_examples=300, deadline=None)
def test_a_warm_memo_decides_every_record_as_a_cold_one(doc: dict[str, Any]) -> None:
    """The memo only skips checks whose result it proves; a bad record is never let through."""
    record = Rec("t", 0, 0, orjson.dumps(doc))
    warm = processing.Router(routing.RoutingTable.default())
    prepare([Rec("t", 0, 0, orjson.dumps(VALID))], warm)  # VALID's route is now known
    cold = processing.Router(routing.RoutingTable.default())
    assert outcome(prepare([record], warm)) == outcome(prepare([record], cold))


def test_a_known_route_with_an_unhashable_id_is_dead_lettered() -> None:
    prepare([Rec("t", 0, 0, orjson.dumps(VALID))])
    bad = {**VALID, "data": {**VALID["data"], "channel_id": ["c-1"]}}
    (dead,) = prepare([Rec("t", 0, 1, orjson.dumps(bad))]).dead
    assert dead.reason == "invalid_field"


def test_a_known_route_with_a_bad_occurred_at_is_dead_lettered() -> None:
    """occurred_at differs on every event: the fast path checks it, the memo cannot."""
    router = processing.Router(routing.RoutingTable.default())
    prepare([Rec("t", 0, 0, orjson.dumps(VALID))], router)
    records = [
        Rec("t", 0, n, orjson.dumps({**VALID, "occurred_at": text}))
        for n, text in enumerate(["yesterday", "2026-11-25T18:00:00", "2026-11-25T18:00:01Z"], 1)
    ]
    batch = prepare(records, router)
    dead = [(d.offset, d.reason) for d in batch.dead]
    assert dead == [(1, "invalid_field"), (2, "invalid_field")]
    assert [r.offset for r in batch.routed] == [3]


def test_five_fields_keep_the_kafka_bytes_extra_fields_are_dropped() -> None:
    raw = orjson.dumps(VALID)
    spaced = orjson.dumps(VALID, option=orjson.OPT_INDENT_2)
    extra = orjson.dumps({**VALID, "trace": "t-1"})
    batch = prepare([Rec("t", 0, n, value) for n, value in enumerate([raw, spaced, extra])])
    first, second, third = (r.envelope_json for r in batch.routed)
    assert first is raw  # exactly what came from Kafka
    assert second is spaced
    assert orjson.loads(third) == VALID


def test_a_poll_is_cut_into_slices_in_order() -> None:
    polled = {"a": [Rec("a", 0, n, None) for n in range(5)], "b": [Rec("b", 0, 0, None)]}
    parts = list(processing.slices(polled, 2))
    assert [{k: [r.offset for r in v] for k, v in part.items()} for part in parts] == [
        {"a": [0, 1]},
        {"a": [2, 3]},
        {"a": [4], "b": [0]},
    ]


def test_a_poll_prepared_in_slices_equals_one_prepared_at_once() -> None:
    records = [
        Rec("t", n % 2, n, env("asset_position_updated", {"asset_id": f"u-{n % 7}"}))
        for n in range(50)
    ]
    whole = prepare(records)
    sliced = processing.Batch()
    for part in processing.slices(processing.group(records), 8):
        processing.prepare(part, TABLE, into=sliced)
    assert outcome(sliced) == outcome(whole)
    assert (sliced.offsets, sliced.consumed) == (whole.offsets, whole.consumed)
