"""Escalation: rules from configuration and the step due at a time, each step once."""

from __future__ import annotations

import pytest

from fleetcast.protocol import escalation as esc

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
