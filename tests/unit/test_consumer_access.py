"""Events that take access away (consumer/access.py) and where the consumer finds them."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from fleetcast.consumer import access, processing
from fleetcast.protocol import routing
from fleetcast.protocol.rooms import RoomKind

NOW = 1_800_000_000.0


def reassigned(**extra: object) -> dict[str, Any]:
    data = {"task_id": "t1", "incident_id": "i9", "user_id": "u2", "previous_user_id": "u1"}
    return {"event_id": "e1", "event_type": "task_assigned", "organization_id": "o1",
            "occurred_at": "2026-11-25T18:00:00Z", "data": {**data, **extra}}  # fmt: skip


def test_a_task_moved_away_withdraws_its_incident_room_from_the_previous_user() -> None:
    doc = reassigned()
    (withdraw,) = access.withdrawals(
        "task_assigned",
        "o1",
        doc["data"],
        access.DEFAULT_RULES,
        NOW,
    )
    assert (withdraw.action, withdraw.user, withdraw.room) == ("withdraw", "u1", "incident:i9")
    assert withdraw.reason == "task_assigned"


def test_nothing_is_withdrawn_without_a_previous_user_or_a_room() -> None:
    rules = access.DEFAULT_RULES
    data = dict(reassigned()["data"])
    same = {**data, "previous_user_id": "u2"}  # assigned to the user who had it
    assert access.withdrawals("task_assigned", "o1", same, rules, 0) == ()
    assert access.withdrawals("task_assigned", "o1", {"previous_user_id": "u1"}, rules, 0) == []
    assert access.withdrawals("alert_created", "o1", data, rules, 0) == ()


def test_rules_come_from_configuration_and_typos_stop_start_up() -> None:
    rules = access.rules_from({"incident_updated": {"user_field": "removed", "rooms": ["channel"]}})
    assert rules["incident_updated"] == access.Rule("removed", (RoomKind.CHANNEL,))
    for bad in (
        {"nope": {"user_field": "x", "rooms": ["incident"]}},
        {"task_updated": {"user_field": "x", "rooms": ["kitchen"]}},
        {"task_updated": {"user_field": "x", "rooms": ["org"]}},
        {"task_updated": {"rooms": ["incident"]}},
    ):
        with pytest.raises(ValueError, match="access rule"):
            access.rules_from(bad)


class Record:
    def __init__(self, offset: int, doc: object) -> None:
        self.topic, self.partition, self.offset, self.key = "tasks", 0, offset, b"o1"
        self.value = orjson.dumps(doc)


@pytest.mark.parametrize("known_route", [False, True])
def test_the_consumer_finds_them_on_both_paths(known_route: bool) -> None:
    router = processing.Router(routing.RoutingTable.default())
    if known_route:  # the fast path: a route met before
        processing.prepare({("tasks", 0): [Record(0, reassigned())]}, router)
    batch = processing.prepare(
        {("tasks", 0): [Record(1, reassigned())]},
        router,
        access_rules=access.DEFAULT_RULES,
        now=NOW,
    )
    assert [c.room for c in batch.controls] == ["incident:i9"]
    assert len(batch.routed) == 1  # and the event itself goes on as usual
