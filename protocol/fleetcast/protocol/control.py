"""Control messages: cut a user, a session or a token off now, or take a room away from people.

A device is stolen, a unit is taken off an incident, a channel is closed:
waiting for tokens to expire is not good enough. Another service (or an
admin, through a gateway's admin API) writes a control message to the
Kafka control topic (default ``fleet.control``, keyed by org); the consumer,
the one writer of Redis, records it (the revocation list and a short log)
and fans it out to every gateway on :func:`fleetcast.protocol.keys.control_channel`;
each gateway acts on it within milliseconds:

- ``revoke``: the connections of ``user`` (or one ``session``, or whoever
  holds token ``jti``) are closed with code ``revoked``, and a reconnect with
  a token issued before ``at`` (``iat``), or with that ``jti``, is refused
  with ``revoked`` until ``until``;
- ``withdraw``: ``room`` is taken from the connections of ``user`` (or from
  everyone in it), who are told ``access_changed``.

JSON, versioned. Pure: parsing and checks only.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Final

import orjson

from fleetcast.protocol import rooms

VERSION: Final = 1
REVOKE: Final = "revoke"
WITHDRAW: Final = "withdraw"
ACTIONS: Final = frozenset({REVOKE, WITHDRAW})
DEFAULT_TOPIC: Final = "fleet.control"
#: A revocation with no ``until`` lasts this long (seconds): the longest a token
#: a gateway accepts may live (the gateway's FLEETCAST_MAX_TOKEN_LIFETIME_S default).
DEFAULT_HOLD_S: Final = 24 * 3600
#: Longest free text (reason) carried.
MAX_REASON: Final = 200


class ControlError(ValueError):
    """A control message that cannot be acted on; the message says why."""


@dataclass(frozen=True, slots=True)
class Control:
    """One control message (see the module docstring)."""

    action: str
    org: str
    user: str | None = None
    session: str | None = None
    jti: str | None = None
    #: Client room name (``incident:i9``), for withdraw.
    room: str | None = None
    reason: str = ""
    #: When it was issued (epoch seconds): tokens issued before it are refused.
    at: float = 0.0
    #: Until when reconnects are refused (epoch seconds; revoke only).
    until: float = 0.0

    def target(self) -> rooms.Room | None:
        """The room a withdraw takes away (None for a revoke)."""
        return rooms.parse_client_room(self.room, self.org) if self.room is not None else None


def parse(doc: Any, *, now: float) -> Control:
    """Check a decoded control document; :class:`ControlError` says what is wrong."""
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise ControlError(f"expected a version {VERSION} control object")
    action = doc.get("action")
    if action not in ACTIONS:
        raise ControlError(f"action must be one of {sorted(ACTIONS)}")
    org = doc.get("org")
    if not isinstance(org, str) or not rooms.is_valid_id(org):
        raise ControlError("org is not a valid id")
    user, session, jti, room = (_text(doc, name) for name in ("user", "session", "jti", "room"))
    if user is not None and not rooms.is_valid_id(user):
        raise ControlError("user is not a valid id")
    if action == REVOKE and user is None and session is None and jti is None:
        raise ControlError("revoke names a user, a session or a jti")
    if action == WITHDRAW:
        if room is None:
            raise ControlError("withdraw names a room")
        try:
            rooms.parse_client_room(room, org)
        except rooms.RoomError as exc:
            raise ControlError(f"room: {exc.message}") from None
    at = _time(doc, "at", now)
    until = _time(doc, "until", at + DEFAULT_HOLD_S)
    reason = doc.get("reason", "")
    if not isinstance(reason, str):
        raise ControlError("reason must be a string")
    return Control(action, org, user, session, jti, room, reason[:MAX_REASON], at, until)


def decode(raw: bytes | str, *, now: float) -> Control:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ControlError(f"not JSON: {exc}") from None
    return parse(doc, now=now)


def encode(control: Control) -> bytes:
    fields = {name: value for name, value in asdict(control).items() if value is not None}
    return orjson.dumps({"v": VERSION, **fields})


def _text(doc: dict[str, Any], name: str) -> str | None:
    value = doc.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 256:
        raise ControlError(f"{name} must be a non-empty string")
    return value


def _time(doc: dict[str, Any], name: str, default: float) -> float:
    value = doc.get(name, default)
    if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
        raise ControlError(f"{name} must be epoch seconds")
    return float(value)


# --- the revocation list ------------------------------------------------------------
#
# Kept in a Redis sorted set (keys.revocations), scored by ``until``: members
# are ``jti:<jti>`` or ``user:<org>:<user>:<at>`` (the time tokens must have
# been issued after). Gateways hold a copy and check it at every handshake.


def members(control: Control) -> list[str]:
    """The revocation list entries a revoke adds (none for a session-only one or a withdraw)."""
    if control.action != REVOKE:
        return []
    entries = []
    if control.jti is not None:
        entries.append(f"jti:{control.jti}")
    if control.user is not None:
        entries.append(f"user:{control.org}:{control.user}:{control.at:.3f}")
    return entries


@dataclass(slots=True)
class Revoked:
    """The revocation list as a gateway holds it: refused token ids, and users' cut-off times."""

    tokens: dict[str, float]
    #: (org, user) -> (issued-before time, until)
    users: dict[tuple[str, str], tuple[float, float]]

    @classmethod
    def empty(cls) -> Revoked:
        return cls({}, {})

    def add(self, member: str, until: float) -> None:
        kind, _, rest = member.partition(":")
        if kind == "jti":
            self.tokens[rest] = max(until, self.tokens.get(rest, 0.0))
        elif kind == "user":
            org, user, at_text = [*rest.split(":"), "", "", ""][:3]
            try:
                at = float(at_text)
            except ValueError:
                return
            before, held = self.users.get((org, user), (0.0, 0.0))
            self.users[(org, user)] = (max(before, at), max(held, until))

    def refuses(self, org: str, user: str, jti: str | None, iat: float | None, now: float) -> bool:
        """True when a token of (org, user) with ``jti`` and ``iat`` is revoked at ``now``."""
        if jti is not None and self.tokens.get(jti, 0.0) > now:
            return True
        entry = self.users.get((org, user))
        if entry is None or entry[1] <= now:
            return False
        return iat is None or iat <= entry[0]

    def prune(self, now: float) -> None:
        self.tokens = {jti: until for jti, until in self.tokens.items() if until > now}
        self.users = {key: entry for key, entry in self.users.items() if entry[1] > now}
