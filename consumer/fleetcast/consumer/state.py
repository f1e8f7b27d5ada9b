"""What an event changes in its org's current state: open incidents, active alerts, users' tasks.

A console opened mid-shift must show the incidents that are open and the
alerts that are active now, not only those it happens to see change; a unit
back from a dead zone needs its open tasks. The consumer keeps that state in
Redis beside the fleet snapshot, updated in the same script call that
publishes the events (so a snapshot and the stream after it never disagree),
and the gateways serve it.

This module decides, per event, the operations on that state; the script
applies them without knowing the domain:

- ``merge`` table item: the item's record takes the event's ``data`` fields
  (a later event's fields override an earlier one's);
- ``drop`` table item: the item is no longer open or active;
- ``own`` table item owner: the item now belongs to ``owner`` (a task assigned
  to a user: if it was another user's, it leaves that user's table).

Tables: ``incidents``, ``alerts``, ``tasks`` (per user). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

from fleetcast.protocol import rooms

INCIDENTS: Final = "incidents"
ALERTS: Final = "alerts"
TASKS: Final = "tasks"

MERGE: Final = "merge"
DROP: Final = "drop"
OWN: Final = "own"


class Op(NamedTuple):
    """One change: ``kind`` on ``table``'s ``item`` (``owner``: the user of a task)."""

    kind: str
    table: str
    item: str
    owner: str = ""


@dataclass(frozen=True, slots=True)
class Rules:
    """Which events close what (configuration: FLEETCAST_STATE_* settings)."""

    #: An incident whose status becomes one of these is no longer open.
    closed_statuses: frozenset[str] = field(
        default_factory=lambda: frozenset({"closed", "resolved", "cancelled"})
    )
    #: Alert event types after which an alert is no longer active.
    alert_end_types: frozenset[str] = field(
        default_factory=lambda: frozenset({"alert_acknowledged"})
    )


#: Event types that may change state (the rest never do: positions, radio).
STATEFUL_TYPES: Final = frozenset(
    {
        "incident_created",
        "incident_updated",
        "incident_status_changed",
        "alert_created",
        "alert_acknowledged",
        "task_assigned",
        "task_updated",
        "task_completed",
    }
)


def ops(event_type: str, data: Mapping[str, Any], rules: Rules) -> tuple[Op, ...]:
    """The state operations of one event (none for events that change no state)."""
    if event_type not in STATEFUL_TYPES:  # receipts and escalations name alerts, change none
        return ()
    if event_type.startswith("incident_"):
        return _incident(event_type, data, rules)
    if event_type.startswith("alert_"):
        return _alert(event_type, data, rules)
    if event_type.startswith("task_"):
        return _task(event_type, data)
    return ()


def _incident(event_type: str, data: Mapping[str, Any], rules: Rules) -> tuple[Op, ...]:
    incident = _id(data, "incident_id")
    if incident is None:
        return ()
    if event_type == "incident_status_changed" and data.get("status") in rules.closed_statuses:
        return (Op(DROP, INCIDENTS, incident),)
    return (Op(MERGE, INCIDENTS, incident),)


def _alert(event_type: str, data: Mapping[str, Any], rules: Rules) -> tuple[Op, ...]:
    alert = _id(data, "alert_id")
    if alert is None:
        return ()
    if event_type in rules.alert_end_types:
        return (Op(DROP, ALERTS, alert),)
    return (Op(MERGE, ALERTS, alert),)


def _task(event_type: str, data: Mapping[str, Any]) -> tuple[Op, ...]:
    task, user = _id(data, "task_id"), _id(data, "user_id")
    if task is None:
        return ()
    if event_type == "task_completed":
        return (Op(DROP, TASKS, task),)
    if user is None:  # an update that does not say whose: the owner on record keeps it
        return (Op(MERGE, TASKS, task),)
    if event_type == "task_assigned":
        return (Op(OWN, TASKS, task, user), Op(MERGE, TASKS, task, user))
    return (Op(MERGE, TASKS, task, user),)


def _id(data: Mapping[str, Any], name: str) -> str | None:
    """An id fit to name a state entry (the room id rules: no ``:``, bounded)."""
    value = data.get(name)
    return value if isinstance(value, str) and rooms.is_valid_id(value) else None
