"""What a batch tells the escalations (pure), and escalation rules in the consumer's settings."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from pydantic import ValidationError

from fleetcast.consumer import escalating, processing
from fleetcast.consumer.settings import Settings
from fleetcast.protocol import escalation

RULES = [
    escalation.parse_rule(
        {"event_types": ["alert_created"], "steps": [{"after_s": 5, "action": "emit"}]}
    )
]


def routed(event_type: str, data: dict[str, Any], event_id: str = "ev-1") -> processing.Routed:
    doc = {"event_id": event_id, "event_type": event_type, "organization_id": "org-a",
           "occurred_at": "2026-11-25T18:00:00Z", "data": data}  # fmt: skip
    route = processing.Route(event_type, "org-a", ("org:org-a",), ("org:org-a",))
    return processing.Routed(route, orjson.dumps(doc), "fleet.alerts", 0, 1)


def test_new_alerts_of_a_rule_are_pending_but_not_escalations_nor_other_types() -> None:
    batch = [
        routed("alert_created", {"alert_id": "a"}),
        routed(
            "alert_created", {"alert_id": "a", "escalation": {"of": "ev-0"}}, "ev-0/escalation/1"
        ),
        routed("incident_created", {"incident_id": "i"}, "ev-2"),
    ]
    found = escalating.seen(batch, RULES)
    assert [doc["event_id"] for doc in found.new] == ["ev-1"]
    assert found.acks == []


def test_acknowledgements_count_for_the_delivery_they_escalate() -> None:
    ack = {"delivery_id": "ev-1", "kind": "acknowledged", "roles": ["field_unit"]}
    by_supervisor = {"delivery_id": "ev-1/escalation/2", "of": "ev-1", "kind": "acknowledged"}
    batch = [
        routed("alert_receipt", {"delivery_id": "ev-1", "kind": "displayed"}),
        routed("alert_receipt", ack),
        routed("alert_receipt", by_supervisor | {"roles": ["supervisor"]}),
    ]
    found = escalating.seen(batch, RULES)
    assert found.acks == [("org-a", "ev-1", ["field_unit"]), ("org-a", "ev-1", ["supervisor"])]


def test_settings_refuse_a_bad_rule_at_start_up() -> None:
    good = [{"event_types": ["alert_created"], "steps": [{"after_s": 30, "action": "redeliver"}]}]
    assert (
        Settings(escalation_rules=good).parsed_escalation_rules()[0].steps[0].action == "redeliver"
    )
    with pytest.raises(ValidationError, match="escalation step"):
        Settings(escalation_rules=[{"event_types": ["alert_created"], "steps": [{"after_s": -1}]}])
