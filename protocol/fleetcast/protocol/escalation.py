"""Escalation rules for unacknowledged alerts, and the pure step function over them.

A rule says, for some event types, what happens while nobody acknowledged a
receipted event: after ``after_s`` seconds from its routing, each step in
turn: ``redeliver`` (the same recipients again, at a higher urgency),
``supervisors`` (deliver to a room of the org, its supervisors' by default),
``emit`` (write ``alert_escalated`` to Kafka for paging, SMS, ...). An
acknowledgement (by anyone, or by one of ``ack_roles`` when set) stops it.

:func:`next_step` is the whole decision: given a rule, what is known of one
delivery and the time, it says which step is due now, or when the next one
will be; the owner of the deadlines (the consumer that owns the org's
partition) only keeps state and acts on the answer. Pure: no I/O, no clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from fleetcast.protocol import rooms

REDELIVER: Final = "redeliver"
SUPERVISORS: Final = "supervisors"
EMIT: Final = "emit"
ACTIONS: Final = frozenset({REDELIVER, SUPERVISORS, EMIT})
#: The event type an ``emit`` step writes.
ESCALATED_TYPE: Final = "alert_escalated"
#: The room a ``supervisors`` step delivers to unless the step names one: a
#: channel or incident room (client name), the kinds an event's data can name.
DEFAULT_SUPERVISORS_ROOM: Final = "channel:supervisors"
#: Room kinds a supervisors step may name, and the data key that routes there.
STEP_ROOM_KEYS: Final = {"channel": "channel_id", "incident": "incident_id"}


@dataclass(frozen=True, slots=True)
class Step:
    """One escalation step: ``action`` once ``after_s`` seconds passed unacknowledged."""

    after_s: float
    action: str
    #: The client room a ``supervisors`` step goes to (org part added by the server).
    room: str | None = None


@dataclass(frozen=True, slots=True)
class Rule:
    """What to do with the unacknowledged events of ``event_types`` (steps by time)."""

    event_types: frozenset[str]
    steps: tuple[Step, ...]
    #: Only an acknowledgement by one of these roles counts (empty: anyone's).
    ack_roles: frozenset[str] = field(default_factory=frozenset)


@dataclass(frozen=True, slots=True)
class Pending:
    """What the deadline owner knows of one receipted delivery."""

    delivery_id: str
    org: str
    event_type: str
    #: When it was routed (epoch seconds): every step's ``after_s`` counts from here.
    routed_at: float
    #: Roles of those who acknowledged it so far (one entry per acknowledgement).
    acked_by_roles: tuple[frozenset[str], ...] = ()
    #: Steps already taken (an index into the rule's steps).
    done: int = 0


@dataclass(frozen=True, slots=True)
class Due:
    """The answer of :func:`next_step`: a step to take now, or when to look again."""

    step: Step | None
    #: Index of ``step`` in the rule (to record as done), or of the next one.
    index: int
    #: When the next step falls due (None: nothing more will happen).
    at: float | None


def parse_rule(doc: Mapping[str, Any]) -> Rule:
    """A rule from configuration; ``ValueError`` names what is wrong (start-up stops)."""
    types = doc.get("event_types")
    steps = doc.get("steps")
    if not isinstance(types, list) or not types or not all(isinstance(t, str) for t in types):
        raise ValueError("escalation rule: event_types must be a non-empty list of types")
    if not isinstance(steps, list) or not steps:
        raise ValueError("escalation rule: steps must be a non-empty list")
    parsed = tuple(_step(step) for step in steps)
    if any(b.after_s < a.after_s for a, b in itertools.pairwise(parsed)):
        raise ValueError("escalation rule: steps must be in order of after_s")
    roles = doc.get("ack_roles") or []
    if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
        raise ValueError("escalation rule: ack_roles must be a list of roles")
    return Rule(frozenset(types), parsed, frozenset(roles))


def _step(doc: object) -> Step:
    if not isinstance(doc, dict):
        raise ValueError("escalation step must be an object {after_s, action, room?}")
    after, action, room = doc.get("after_s"), doc.get("action"), doc.get("room")
    if isinstance(after, bool) or not isinstance(after, int | float) or after <= 0:
        raise ValueError("escalation step: after_s must be a number of seconds > 0")
    if action not in ACTIONS:
        raise ValueError(f"escalation step: action must be one of {', '.join(sorted(ACTIONS))}")
    if room is not None and (action != SUPERVISORS or not isinstance(room, str)):
        raise ValueError("escalation step: only a supervisors step names a room")
    if room is not None:
        room_data(room)
    return Step(float(after), action, room)


def room_data(room: str) -> dict[str, str]:
    """The ``data`` that routes an event to client room ``channel:<id>`` or ``incident:<id>``."""
    kind, _, entity = room.partition(":")
    if kind not in STEP_ROOM_KEYS or not rooms.is_valid_id(entity):
        raise ValueError(f"escalation step room {room!r}: channel:<id> or incident:<id>")
    return {STEP_ROOM_KEYS[kind]: entity}


def acknowledged(rule: Rule, pending: Pending) -> bool:
    """Whether an acknowledgement that counts for ``rule`` has arrived."""
    if not rule.ack_roles:
        return bool(pending.acked_by_roles)
    return any(roles & rule.ack_roles for roles in pending.acked_by_roles)


def next_step(rule: Rule, pending: Pending, now: float) -> Due:
    """The step due at ``now`` (each one once, in order), or when the next is due."""
    if acknowledged(rule, pending) or pending.done >= len(rule.steps):
        return Due(None, pending.done, None)
    step = rule.steps[pending.done]
    due_at = pending.routed_at + step.after_s
    if now >= due_at:
        return Due(step, pending.done, _after(rule, pending.done + 1, pending.routed_at))
    return Due(None, pending.done, due_at)


def _after(rule: Rule, index: int, routed_at: float) -> float | None:
    return routed_at + rule.steps[index].after_s if index < len(rule.steps) else None


def escalation_event(
    original: Mapping[str, Any], step: Step, level: int, at: str
) -> dict[str, Any]:
    """The event a step writes to Kafka, for the original envelope ``original``.

    ``redeliver`` repeats the original type (same data, so the same rooms) with
    ``urgency: "high"``; ``supervisors`` is an ``alert_escalated`` to the
    step's room; ``emit`` an ``alert_escalated`` that names no room (for other
    systems). Each names the delivery it escalates in ``data.escalation.of``, and
    its ``event_id`` is fixed by (original, level): a retried step is one event.
    """
    data = original.get("data") or {}
    mark = {"of": original["event_id"], "level": level, "step": step.action}
    if step.action == REDELIVER:
        body = {**data, "urgency": "high", "escalation": mark}
        event_type = original["event_type"]
    else:
        body = {"alert_id": data.get("alert_id"), "escalation": mark, "alert": data}
        if step.action == SUPERVISORS:
            body |= room_data(step.room or DEFAULT_SUPERVISORS_ROOM)
        event_type = ESCALATED_TYPE
    return {
        "event_id": f"{original['event_id']}/escalation/{level}",
        "event_type": event_type,
        "organization_id": original["organization_id"],
        "occurred_at": at,
        "data": body,
    }


def rule_for(rules: Sequence[Rule], event_type: str) -> Rule | None:
    """The first rule covering ``event_type`` (configuration order), if any."""
    return next((rule for rule in rules if event_type in rule.event_types), None)
