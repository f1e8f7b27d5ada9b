"""What each event changes in its org's state (consumer/state.py)."""

from __future__ import annotations

import pytest

from fleetcast.consumer import state
from fleetcast.consumer.state import Op

RULES = state.Rules()


@pytest.mark.parametrize(
    ("event_type", "data", "expected"),
    [
        ("incident_created", {"incident_id": "i1", "status": "dispatched"},
         (Op("merge", "incidents", "i1"),)),
        ("incident_updated", {"incident_id": "i1", "note": "units added"},
         (Op("merge", "incidents", "i1"),)),
        ("incident_status_changed", {"incident_id": "i1", "status": "on_scene"},
         (Op("merge", "incidents", "i1"),)),
        ("incident_status_changed", {"incident_id": "i1", "status": "closed"},
         (Op("drop", "incidents", "i1"),)),
        ("alert_created", {"alert_id": "a1"}, (Op("merge", "alerts", "a1"),)),
        ("alert_acknowledged", {"alert_id": "a1"}, (Op("drop", "alerts", "a1"),)),
        ("task_assigned", {"task_id": "t1", "user_id": "u1"},
         (Op("own", "tasks", "t1", "u1"), Op("merge", "tasks", "t1", "u1"))),
        ("task_updated", {"task_id": "t1", "user_id": "u1"}, (Op("merge", "tasks", "t1", "u1"),)),
        ("task_updated", {"task_id": "t1"}, (Op("merge", "tasks", "t1"),)),  # the owner on record
        ("task_completed", {"task_id": "t1", "user_id": "u1"}, (Op("drop", "tasks", "t1"),)),
        ("asset_position_updated", {"asset_id": "a"}, ()),
        ("alert_created", {}, ()),  # nothing to name it by
        ("incident_created", {"incident_id": "bad:id"}, ()),
    ],
)  # fmt: skip
def test_each_event_changes_what_it_names(event_type: str, data: dict, expected: tuple) -> None:  # type: ignore[type-arg]
    assert state.ops(event_type, data, RULES) == expected


def test_what_closes_an_incident_or_ends_an_alert_is_configuration() -> None:
    rules = state.Rules(
        closed_statuses=frozenset({"done"}), alert_end_types=frozenset({"alert_resolved"})
    )
    closing = {"incident_id": "i1", "status": "closed"}
    assert state.ops("incident_status_changed", closing, rules)[0].kind == "merge"
    assert state.ops("alert_acknowledged", {"alert_id": "a"}, rules)[0].kind == "merge"
