"""Role policy: may this token's holder be in this room? Pure, no I/O.

The room always comes from :func:`fleetcast.protocol.rooms.parse_client_room`
with the token's org, so the policy never sees another org's room unless a
bug put it there; it checks the org anyway, so no grant can ever reach across.

Every role may be in the two rooms a connection joins automatically (its
org room and its own user room). On top of that each role has grants:

==================  =========================================================
grant               allows
==================  =========================================================
``org``/``fleet``   the org room / the org's fleet map room
``user``            any user room of the org (not only one's own)
``channel`` ...     any channel (incident, asset) room of the org
``channel:listed``  only the channels listed in the token's ``channels``
``asset:listed``    only the assets listed in the token's ``assets``
==================  =========================================================

A holder of several roles gets the union of their grants.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from fleetcast.gateway.edge.auth import Claims
from fleetcast.protocol.rooms import Room, RoomKind

FULL_ACCESS: Final = ("org", "fleet", "user", "channel", "incident", "asset")
LISTED_GRANTS: Final = {"channel:listed": RoomKind.CHANNEL, "asset:listed": RoomKind.ASSET}
GRANTS: Final = frozenset({*FULL_ACCESS, *LISTED_GRANTS})


def default_grants() -> dict[str, list[str]]:
    """DESIGN.md's roles: dispatch staff see the whole org; units what they are given."""
    return {
        "admin": list(FULL_ACCESS),
        "supervisor": list(FULL_ACCESS),
        "dispatcher": list(FULL_ACCESS),
        "field_unit": ["channel:listed", "asset:listed"],
        "viewer": ["fleet"],
    }


@dataclass(frozen=True, slots=True)
class Policy:
    """Role -> room kinds it may enter fully, and kinds it may enter when listed."""

    full: Mapping[str, frozenset[RoomKind]]
    listed: Mapping[str, frozenset[RoomKind]]

    @classmethod
    def from_grants(cls, grants: Mapping[str, Sequence[str]]) -> Policy:
        """Build from a role -> grants table; ``ValueError`` names a bad grant."""
        full: dict[str, frozenset[RoomKind]] = {}
        listed: dict[str, frozenset[RoomKind]] = {}
        for role, role_grants in grants.items():
            bad = [grant for grant in role_grants if grant not in GRANTS]
            if bad:
                raise ValueError(f"role {role!r}: unknown grant(s) {bad}; known: {sorted(GRANTS)}")
            full[role] = frozenset(RoomKind(g) for g in role_grants if g in FULL_ACCESS)
            listed[role] = frozenset(LISTED_GRANTS[g] for g in role_grants if g in LISTED_GRANTS)
        return cls(full, listed)

    @classmethod
    def default(cls) -> Policy:
        return cls.from_grants(default_grants())

    def known_roles(self, claims: Claims) -> tuple[str, ...]:
        """The roles of the token this policy knows; none means the token is forbidden."""
        return tuple(role for role in claims.roles if role in self.full)

    def allows(self, claims: Claims, room: Room) -> bool:
        """True when the token's holder may be in ``room``."""
        if room.org != claims.org:
            return False
        if is_automatic(claims, room):
            return True
        for role in self.known_roles(claims):
            if room.kind in self.full[role]:
                return True
            if room.kind in self.listed[role] and _listed(claims, room):
                return True
        return False


def is_automatic(claims: Claims, room: Room) -> bool:
    """The org room and one's own user room, joined at connect by every role."""
    if room.org != claims.org:
        return False
    return room.kind is RoomKind.ORG or (room.kind is RoomKind.USER and room.entity == claims.user)


def automatic_rooms(claims: Claims) -> tuple[Room, Room]:
    return Room(RoomKind.ORG, claims.org), Room(RoomKind.USER, claims.org, claims.user)


def _listed(claims: Claims, room: Room) -> bool:
    if room.kind is RoomKind.CHANNEL:
        return room.entity in claims.channels
    if room.kind is RoomKind.ASSET:
        return room.entity in claims.assets
    return False
