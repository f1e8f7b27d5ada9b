"""Kafka records -> routed events, dead letters and offsets (the pure core)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from fleetcast.consumer import processing, publishing
from fleetcast.protocol import routing

TABLE = processing.Router(routing.RoutingTable.default())


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
    batch = processing.prepare(
        [
            Rec("fleet.incidents", 0, 10, env("incident_created", {"incident_id": "i-1"})),
            Rec("fleet.incidents", 0, 11, b"garbage"),
            Rec("fleet.assets", 2, 5, env("asset_position_updated", {"asset_id": "u-1"})),
        ],
        TABLE,
    )
    assert [r.event_type for r in batch.routed] == ["incident_created", "asset_position_updated"]
    assert [(d.offset, d.reason) for d in batch.dead] == [(11, "not_json")]
    assert batch.offsets == {("fleet.incidents", 0): 12, ("fleet.assets", 2): 6}
    assert batch.consumed == {"fleet.incidents": 2, "fleet.assets": 1}
    assert len(batch) == 3


def test_the_fleet_room_keeps_no_history_and_positions_update_the_snapshot() -> None:
    (routed,) = processing.prepare(
        [Rec("t", 0, 0, env("asset_position_updated", {"asset_id": "u-1", "lat": 1.5}))], TABLE
    ).routed
    assert routed.rooms == ("asset:u-1:org:org-1", "fleet:org:org-1")
    assert routed.history == ("asset:u-1:org:org-1",)
    assert (routed.snapshot, routed.asset_id) == ("position", "u-1")
    assert orjson.loads(routed.envelope_json)["data"] == {"asset_id": "u-1", "lat": 1.5}


def test_status_goes_to_the_status_snapshot_other_types_to_none() -> None:
    batch = processing.prepare(
        [
            Rec("t", 0, 0, env("asset_status_changed", {"asset_id": "u-1", "status": "busy"})),
            Rec("t", 0, 1, env("alert_created", {"asset_id": "u-1"})),
        ],
        TABLE,
    )
    assert [r.snapshot for r in batch.routed] == ["status", None]


def test_an_event_with_no_room_is_counted_not_published() -> None:
    batch = processing.prepare([Rec("t", 0, 0, env("task_updated", {"task_id": "x"}))], TABLE)
    assert (batch.routed, batch.dead, batch.unrouted) == ([], [], 1)
    assert batch.offsets == {("t", 0): 1}


def test_dead_letters_keep_the_record_and_the_reason() -> None:
    (dead,) = processing.prepare(
        [Rec("t", 1, 7, env("nope", {}), key=b"k")], TABLE, max_event_bytes=10_000
    ).dead
    assert (dead.topic, dead.partition, dead.offset, dead.key) == ("t", 1, 7, b"k")
    assert dead.reason == "unknown_type"
    assert dead.value == env("nope", {})


def test_oversized_uses_the_configured_limit() -> None:
    raw = env("incident_created", {"note": "x" * 500})
    (dead,) = processing.prepare([Rec("t", 0, 0, raw)], TABLE, max_event_bytes=300).dead
    assert dead.reason == "oversized"


def test_events_group_per_org_in_order() -> None:
    records = [
        Rec("t", 0, i, env("alert_created", {}, org=org, event_id=str(i)))
        for i, org in enumerate(["a", "b", "a", "a", "b"])
    ]
    groups = processing.by_org(processing.prepare(records, TABLE).routed)
    assert {org: [r.event_id for r in items] for org, items in groups.items()} == {
        "a": ["0", "2", "3"],
        "b": ["1", "4"],
    }


def test_the_router_memo_gives_the_same_targets_and_stays_bounded() -> None:
    router = processing.Router(routing.RoutingTable.default(), max_entries=2)
    records = [
        Rec("t", 0, n, env("asset_position_updated", {"asset_id": f"u-{n % 3}"})) for n in range(9)
    ]
    routed = processing.prepare(records, router).routed
    assert [r.rooms[0] for r in routed] == [f"asset:u-{n % 3}:org:org-1" for n in range(9)]
    assert len(router._memo) <= 2


def test_the_script_input_is_length_prefixed_and_names_every_key() -> None:
    (routed,) = processing.prepare(
        [Rec("t", 0, 0, env("asset_position_updated", {"asset_id": "u-1"}, event_id="e\x1f:1"))],
        TABLE,
    ).routed
    blob = publishing.encode_batch([routed], publishing.Limits())
    fields = parse(blob)
    # wire version, history field, key prefixes
    assert fields[:4] == ["1", "e", "fleetcast:seen:", "fleetcast:history:"]
    assert "fleetcast:events:org-1" in fields
    assert "fleetcast:fleet:org-1:positions" in fields
    # per event: id (any bytes survive the framing), snapshot, envelope, rooms, history
    assert fields[-6:-3] == ["e\x1f:1", "pu-1", routed.envelope_json.decode()]
    assert fields[-3:] == ['["asset:u-1:org:org-1","fleet:org:org-1"]', "1", "asset:u-1:org:org-1"]


def parse(blob: bytes) -> list[str]:
    """A reader of the script's framing, as publish.lua's field() reads it."""
    out, cursor = [], 0
    while cursor < len(blob):
        colon = blob.index(b":", cursor)
        size = int(blob[cursor:colon])
        out.append(blob[colon + 1 : colon + 1 + size].decode())
        cursor = colon + 1 + size
    return out
