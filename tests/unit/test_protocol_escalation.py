"""Escalation: rules from configuration and the step due at a time, each step once."""

from __future__ import annotations

import pytest

from fleetcast.protocol import escalation as esc
from fleetcast.protocol import events, receipts, routing

RULE = esc.parse_rule(
    {
        "event_types": ["alert_created"],
        "steps": [
            {"after_s": 30, "action": "redeliver"},
            {"after_s": 60, "action": "supervisors"},
            {"after_s": 90, "action": "emit"},
        ],
    }
)


def pending(**kw: object) -> esc.Pending:
    return esc.Pending("ev-1", "org-a", "alert_created", routed_at=1000.0, **kw)  # type: ignore[arg-type]


def test_nothing_is_due_before_the_first_deadline_and_it_says_when() -> None:
    assert esc.next_step(RULE, pending(), 1029.9) == esc.Due(None, 0, 1030.0)


def test_each_step_falls_due_in_turn_and_names_the_next_deadline() -> None:
    due = esc.next_step(RULE, pending(), 1030.0)
    assert due.step == esc.Step(30.0, "redeliver")
    assert due.index == 0
    assert due.at == 1060.0
    due = esc.next_step(RULE, pending(done=1), 1075.0)
    assert due.step is not None
    assert due.step.action == "supervisors"
    assert due.at == 1090.0
    due = esc.next_step(RULE, pending(done=2), 5000.0)
    assert due.step is not None
    assert due.step.action == "emit"
    assert due.at is None


def test_a_late_owner_takes_missed_steps_one_call_at_a_time_never_twice() -> None:
    state, taken = pending(), []
    for _ in range(5):
        due = esc.next_step(RULE, state, 2000.0)
        if due.step is None:
            break
        taken.append(due.step.action)
        state = pending(done=due.index + 1)
    assert taken == ["redeliver", "supervisors", "emit"]
    assert esc.next_step(RULE, state, 9999.0) == esc.Due(None, 3, None)


def test_an_acknowledgement_stops_it() -> None:
    acked = pending(acked_by_roles=(frozenset({"field_unit"}),))
    assert esc.next_step(RULE, acked, 5000.0).step is None


def test_with_ack_roles_only_those_roles_count() -> None:
    rule = esc.Rule(RULE.event_types, RULE.steps, frozenset({"supervisor"}))
    by_unit = pending(acked_by_roles=(frozenset({"field_unit"}),))
    assert esc.next_step(rule, by_unit, 1030.0).step is not None
    by_super = pending(acked_by_roles=(frozenset({"field_unit"}), frozenset({"supervisor"})))
    assert esc.next_step(rule, by_super, 1030.0).step is None


def test_rule_for_picks_the_first_rule_of_the_type() -> None:
    assert esc.rule_for([RULE], "alert_created") is RULE
    assert esc.rule_for([RULE], "incident_created") is None


@pytest.mark.parametrize(
    "doc",
    [
        {"event_types": [], "steps": [{"after_s": 1, "action": "emit"}]},
        {"event_types": ["alert_created"], "steps": []},
        {"event_types": ["alert_created"], "steps": [{"after_s": 0, "action": "emit"}]},
        {"event_types": ["alert_created"], "steps": [{"after_s": True, "action": "emit"}]},
        {"event_types": ["alert_created"], "steps": [{"after_s": 5, "action": "page"}]},
        {
            "event_types": ["alert_created"],
            "steps": [{"after_s": 5, "action": "emit", "room": "x"}],
        },
        {
            "event_types": ["alert_created"],
            "steps": [{"after_s": 9, "action": "emit"}, {"after_s": 5, "action": "redeliver"}],
        },
    ],
)
def test_a_bad_rule_is_refused_saying_what(doc: dict[str, object]) -> None:
    with pytest.raises(ValueError, match="escalation"):
        esc.parse_rule(doc)


ORIGINAL = {
    "event_id": "ev-1",
    "event_type": "alert_created",
    "organization_id": "org-a",
    "occurred_at": "2026-11-25T18:00:00Z",
    "data": {"alert_id": "al-1", "asset_id": "u-7", "sent_by": "disp-1"},
}


def test_a_redelivery_repeats_the_alert_with_high_urgency_naming_what_it_escalates() -> None:
    doc = esc.escalation_event(ORIGINAL, esc.Step(30, "redeliver"), 1, "2026-11-25T18:00:30Z")
    assert events.validate_envelope(doc).event_type == "alert_created"
    assert doc["event_id"] == "ev-1/escalation/1"
    assert doc["data"]["urgency"] == "high"
    assert doc["data"]["asset_id"] == "u-7"
    table = routing.RoutingTable.default()
    assert routing.route(events.validate_envelope(doc), table) == routing.route(
        events.validate_envelope(ORIGINAL), table
    )
    tag = receipts.tag_of(doc)
    assert tag is not None
    assert tag.of == "ev-1"


def test_the_supervisors_step_goes_to_their_room_only_and_emit_to_no_room() -> None:
    table = routing.RoutingTable.default()
    sup = esc.escalation_event(ORIGINAL, esc.Step(60, "supervisors"), 2, "2026-11-25T18:01:00Z")
    assert [r.name for r in routing.route(events.validate_envelope(sup), table)] == [
        "channel:supervisors:org:org-a"
    ]
    emit = esc.escalation_event(ORIGINAL, esc.Step(90, "emit"), 3, "2026-11-25T18:01:30Z")
    assert emit["event_type"] == "alert_escalated"
    assert routing.route(events.validate_envelope(emit), table) == ()
    assert emit["data"]["alert"] == ORIGINAL["data"]


def test_a_supervisors_step_names_a_channel_or_incident_room() -> None:
    rule = {"event_types": ["alert_created"], "steps": [{"after_s": 5, "action": "supervisors"}]}
    rule["steps"][0]["room"] = "incident:inc-9"  # type: ignore[index]
    assert esc.parse_rule(rule).steps[0].room == "incident:inc-9"
    rule["steps"][0]["room"] = "org"  # type: ignore[index]
    with pytest.raises(ValueError, match="channel:<id>"):
        esc.parse_rule(rule)
