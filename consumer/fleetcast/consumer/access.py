"""Access that domain events take away: a task reassigned from a unit withdraws its incident room.

When the dispatch system moves a task (or an incident) from one user to
another, the previous user's connections should lose the rooms that came
with it at once, not at their next token refresh. Each rule names an event
type, the ``data`` field that names the user losing access, and the room
kinds withdrawn (their ids from ``data``, as routing takes them). The
consumer turns a matching event into a ``withdraw`` control message
(protocol/control.py) per room, recorded and fanned out like one from the
control topic. Configuration: FLEETCAST_ACCESS_RULES (JSON). Pure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

from fleetcast.protocol import control, events, routing
from fleetcast.protocol.rooms import RoomKind


@dataclass(frozen=True, slots=True)
class Rule:
    """``data[user_field]`` loses the rooms of ``kinds`` this event names."""

    user_field: str
    kinds: tuple[RoomKind, ...]


DEFAULT_RULES: Final = {
    "task_assigned": Rule("previous_user_id", (RoomKind.INCIDENT,)),
    "task_updated": Rule("previous_user_id", (RoomKind.INCIDENT,)),
}


def rules_from(table: Mapping[str, Mapping[str, Any]]) -> dict[str, Rule]:
    """``{"task_assigned": {"user_field": "previous_user_id", "rooms": ["incident"]}}`` -> rules.

    Raises ValueError naming a bad entry (a typo must stop start-up, not do nothing).
    """
    rules = {}
    for event_type, entry in table.items():
        if event_type not in events.CATALOG:
            raise ValueError(f"access rule for unknown event type {event_type!r}")
        field, kinds = entry.get("user_field"), entry.get("rooms")
        if not isinstance(field, str) or not isinstance(kinds, list) or not kinds:
            raise ValueError(f"access rule {event_type!r}: needs user_field and rooms")
        try:
            chosen = tuple(RoomKind(kind) for kind in kinds)
        except ValueError:
            raise ValueError(f"access rule {event_type!r}: unknown room kind in {kinds}") from None
        if any(kind not in routing.KIND_DATA_KEYS for kind in chosen):
            raise ValueError(f"access rule {event_type!r}: only rooms named by data can go")
        rules[event_type] = Rule(field, chosen)
    return rules


def withdrawals(
    event_type: str, org: str, data: Mapping[str, Any], rules: Mapping[str, Rule], now: float
) -> Sequence[control.Control]:
    """The withdraw messages one event calls for (usually none)."""
    rule = rules.get(event_type)
    if rule is None:
        return ()
    user = data.get(rule.user_field)
    if not isinstance(user, str) or user == data.get("user_id"):
        return ()
    found = []
    for kind in rule.kinds:
        entity = data.get(routing.KIND_DATA_KEYS[kind])
        if not isinstance(entity, str):
            continue
        doc = {"v": control.VERSION, "action": control.WITHDRAW, "org": org, "user": user,
               "room": f"{kind.value}:{entity}", "reason": event_type, "at": now}  # fmt: skip
        try:
            found.append(control.parse(doc, now=now))
        except control.ControlError:  # an id that names no room: nothing to take away
            continue
    return found
