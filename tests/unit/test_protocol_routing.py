"""The default routing table of DESIGN.md, and overrides."""

from __future__ import annotations

from typing import Any

import pytest

from fleetcast.protocol import events, routing

ORG = "org-42"
ALL_IDS = {"channel_id": "ch-3", "incident_id": "inc-9", "asset_id": "u-7", "user_id": "usr-1"}
NAMED = [
    "channel:ch-3:org:org-42",
    "incident:inc-9:org:org-42",
    "asset:u-7:org:org-42",
    "user:usr-1:org:org-42",
]


def rooms(
    event_type: str, data: dict[str, Any], table: routing.RoutingTable | None = None
) -> list[str]:
    envelope = events.Envelope("e-1", event_type, ORG, "2026-11-25T18:00:00Z", data)
    return [room.name for room in routing.route(envelope, table or routing.RoutingTable.default())]


@pytest.mark.parametrize("event_type", sorted(events.EVENT_TYPES))
def test_every_type_goes_to_the_rooms_its_data_names(event_type: str) -> None:
    expected = list(NAMED)
    if event_type in routing.ORG_WIDE_TYPES:
        expected.append("org:org-42")
    if event_type in {"asset_position_updated", "asset_status_changed"}:
        expected.append("fleet:org:org-42")
    assert rooms(event_type, ALL_IDS) == expected


def test_org_wide_types_are_the_five_of_the_design() -> None:
    assert {
        "incident_created",
        "incident_status_changed",
        "alert_created",
        "alert_acknowledged",
        "asset_status_changed",
    } == routing.ORG_WIDE_TYPES


def test_absent_or_null_ids_name_no_room() -> None:
    assert rooms("transmission_started", {"channel_id": "ch-3", "asset_id": None}) == [
        "channel:ch-3:org:org-42"
    ]
    assert rooms("task_updated", {}) == []
    assert rooms("alert_created", {}) == ["org:org-42"]


def test_a_position_reaches_its_asset_and_the_fleet_room_only() -> None:
    assert rooms("asset_position_updated", {"asset_id": "u-7", "lat": 1.0}) == [
        "asset:u-7:org:org-42",
        "fleet:org:org-42",
    ]


def test_overrides_replace_the_kinds_of_one_type() -> None:
    table = routing.RoutingTable.with_overrides({"task_updated": ["user", "org"]})
    assert rooms("task_updated", ALL_IDS, table) == ["user:usr-1:org:org-42", "org:org-42"]
    assert rooms("task_completed", ALL_IDS, table) == NAMED


def test_duplicate_kinds_give_one_room() -> None:
    table = routing.RoutingTable.with_overrides({"alert_created": ["org", "org"]})
    assert rooms("alert_created", {}, table) == ["org:org-42"]


@pytest.mark.parametrize(
    ("overrides", "message"),
    [({"no_such_type": ["org"]}, "unknown event type"), ({"task_updated": ["team"]}, "room kinds")],
)
def test_bad_overrides_name_the_bad_entry(overrides: dict[str, list[str]], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        routing.RoutingTable.with_overrides(overrides)
