"""Room names: the one place that turns strings into rooms and back.

Rooms are always scoped to an organization. Clients never write the org part:
they ask for ``channel:ch-3`` and the server adds the org of their token, so a
client-facing room string with any extra ``:`` part is refused outright. That
single rule is what keeps one tenant out of another's rooms.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,128}")
MAX_ROOM_STRING = 300  # longest valid client-facing room is "incident:" + 128 chars


class RoomKind(enum.StrEnum):
    ORG = "org"
    USER = "user"
    CHANNEL = "channel"
    INCIDENT = "incident"
    ASSET = "asset"
    FLEET = "fleet"


#: Kinds whose room names carry an entity id besides the org.
ENTITY_KINDS = frozenset({RoomKind.USER, RoomKind.CHANNEL, RoomKind.INCIDENT, RoomKind.ASSET})


class RoomError(ValueError):
    """A room string that names no room a client may ask for.

    ``code`` is the machine-readable reason sent back in a subscribe ack.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def is_valid_id(value: object) -> bool:
    """True for an org, user, channel, incident or asset id of the allowed form."""
    return isinstance(value, str) and ID_PATTERN.fullmatch(value) is not None


@dataclass(frozen=True, slots=True)
class Room:
    """One room of one organization.

    ``entity`` is the channel/incident/asset/user id, or ``None`` for the org
    and fleet rooms.
    """

    kind: RoomKind
    org: str
    entity: str | None = None

    def __post_init__(self) -> None:
        if not is_valid_id(self.org):
            raise RoomError("invalid_room", "organization id is not valid")
        if (self.kind in ENTITY_KINDS) != (self.entity is not None):
            raise RoomError(
                "invalid_room",
                f"room kind {self.kind} takes {'an' if self.kind in ENTITY_KINDS else 'no'} id",
            )
        if self.entity is not None and not is_valid_id(self.entity):
            raise RoomError(
                "invalid_room", "room id must be 1-128 letters, digits, '-', '_' or '.'"
            )

    @property
    def name(self) -> str:
        """The full, server-side name: ``channel:ch-3:org:org-42``."""
        if self.kind is RoomKind.ORG:
            return f"org:{self.org}"
        if self.kind is RoomKind.FLEET:
            return f"fleet:org:{self.org}"
        return f"{self.kind}:{self.entity}:org:{self.org}"

    @property
    def client_name(self) -> str:
        """The name a client uses and sees: ``channel:ch-3``, ``org``, ``fleet``."""
        if self.entity is None:
            return str(self.kind)
        return f"{self.kind}:{self.entity}"

    def __str__(self) -> str:
        return self.name


def org_room(org: str) -> Room:
    return Room(RoomKind.ORG, org)


def user_room(user: str, org: str) -> Room:
    return Room(RoomKind.USER, org, user)


def fleet_room(org: str) -> Room:
    return Room(RoomKind.FLEET, org)


def parse_client_room(text: object, org: str) -> Room:
    """Turn what a client sent (``"channel:ch-3"``, ``"fleet"``) into a room of ``org``.

    Raises :class:`RoomError` with code ``invalid_room`` for anything malformed
    (wrong type, too long, bad id, an org part smuggled in) and
    ``unknown_room`` for a kind that does not exist.
    """
    if not isinstance(text, str):
        raise RoomError("invalid_room", "room must be a string")
    if not text or len(text) > MAX_ROOM_STRING:
        raise RoomError("invalid_room", "room must be 1 to 300 characters")
    kind_text, sep, entity = text.partition(":")
    try:
        kind = RoomKind(kind_text)
    except ValueError:
        raise RoomError("unknown_room", f"unknown room kind {kind_text[:32]!r}") from None
    if kind in ENTITY_KINDS:
        if not sep or ":" in entity:
            raise RoomError("invalid_room", f"expected '{kind}:<id>'")
        return Room(kind, org, entity)
    if sep:
        raise RoomError("invalid_room", f"room {kind} takes no id")
    return Room(kind, org)


#: Full names of fleet rooms start with this (``fleet:org:{org}``).
FLEET_PREFIX = "fleet:"


def belongs_to(name: str, org: str) -> bool:
    """True when a full room name is one of ``org``'s (ids never contain ``:``).

    A string test, not a parse: delivery asks it for every target room of
    every event.
    """
    return name == f"org:{org}" or name.endswith(f":org:{org}")


def client_name(name: str, org: str) -> str:
    """The client's name of one of ``org``'s rooms: ``channel:c:org:o`` -> ``channel:c``.

    ``org:o`` -> ``org``, ``fleet:org:o`` -> ``fleet``. The inverse of
    :func:`parse_client_room` for names :func:`belongs_to` ``org`` accepts.
    """
    suffix = f":org:{org}"
    return name[: -len(suffix)] if name.endswith(suffix) else RoomKind.ORG.value


def is_fleet(name: str) -> bool:
    """True for an org's fleet room (the map's: positions batched, no history)."""
    return name.startswith(FLEET_PREFIX)


def parse_room(name: str) -> Room:
    """Parse a full server-side room name (the inverse of :attr:`Room.name`)."""
    parts = name.split(":")
    if len(parts) == 2 and parts[0] == "org":
        return Room(RoomKind.ORG, parts[1])
    if len(parts) == 3 and parts[0] == "fleet" and parts[1] == "org":
        return Room(RoomKind.FLEET, parts[2])
    if len(parts) == 4 and parts[2] == "org":
        try:
            kind = RoomKind(parts[0])
        except ValueError:
            raise RoomError("unknown_room", f"unknown room kind {parts[0][:32]!r}") from None
        if kind in ENTITY_KINDS:
            return Room(kind, parts[3], parts[1])
    raise RoomError("invalid_room", "not a room name")
