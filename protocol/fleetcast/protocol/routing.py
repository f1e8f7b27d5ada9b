"""Which rooms an event goes to: a pure function over a configurable table.

The default table is DESIGN.md's: every room the event's ``data`` names, the
org room for org-wide types, and the fleet room for asset positions and
status. Overrides replace the room kinds of individual event types, e.g.
``{"task_updated": ["user", "org"]}``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from fleetcast.protocol import events
from fleetcast.protocol.rooms import Room, RoomKind

#: data key → room kind it names.
DATA_KEY_KINDS: Final = {
    "channel_id": RoomKind.CHANNEL,
    "incident_id": RoomKind.INCIDENT,
    "asset_id": RoomKind.ASSET,
    "user_id": RoomKind.USER,
}
KIND_DATA_KEYS: Final = {kind: key for key, kind in DATA_KEY_KINDS.items()}
NAMED_KINDS: Final = (RoomKind.CHANNEL, RoomKind.INCIDENT, RoomKind.ASSET, RoomKind.USER)

ORG_WIDE_TYPES: Final = frozenset(
    {
        "incident_created",
        "incident_status_changed",
        "alert_created",
        "alert_acknowledged",
        "asset_status_changed",
    }
)
FLEET_TYPES: Final = frozenset({"asset_position_updated", "asset_status_changed"})


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """Room kinds per event type. Entity kinds take their id from ``data``."""

    kinds: Mapping[str, tuple[RoomKind, ...]]

    @classmethod
    def default(cls) -> RoutingTable:
        table: dict[str, tuple[RoomKind, ...]] = {}
        for event_type in events.CATALOG:
            kinds = list(NAMED_KINDS)
            if event_type in ORG_WIDE_TYPES:
                kinds.append(RoomKind.ORG)
            if event_type in FLEET_TYPES:
                kinds.append(RoomKind.FLEET)
            table[event_type] = tuple(kinds)
        return cls(table)

    @classmethod
    def with_overrides(cls, overrides: Mapping[str, Sequence[str]]) -> RoutingTable:
        """The default table with some event types' room kinds replaced.

        Raises ``ValueError`` naming the bad entry, so a typo in configuration
        stops start-up instead of silently routing nowhere.
        """
        table = dict(cls.default().kinds)
        for event_type, kind_names in overrides.items():
            if event_type not in events.CATALOG:
                raise ValueError(f"routing override for unknown event type {event_type!r}")
            try:
                table[event_type] = tuple(RoomKind(name) for name in kind_names)
            except ValueError:
                raise ValueError(
                    f"routing override for {event_type!r}: room kinds are "
                    f"{', '.join(k.value for k in RoomKind)}"
                ) from None
        return cls(table)


def route(envelope: events.Envelope, table: RoutingTable) -> tuple[Room, ...]:
    """Target rooms of one event, without duplicates, in table order."""
    org = envelope.organization_id
    targets: list[Room] = []
    for kind in table.kinds.get(envelope.event_type, ()):
        if kind in KIND_DATA_KEYS:
            entity = envelope.data.get(KIND_DATA_KEYS[kind])
            if entity is None:
                continue
            targets.append(Room(kind, org, entity))
        else:
            targets.append(Room(kind, org))
    return tuple(dict.fromkeys(targets))
