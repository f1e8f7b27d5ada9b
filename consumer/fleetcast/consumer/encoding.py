"""The consumer's script call, packed: ``publish.lua``'s KEYS and ARGV as RESP bytes.

Pure (no I/O): :class:`Encoder` turns a batch's routed events into one
EVALSHA per org (:class:`OrgCall`), which :mod:`fleetcast.consumer.publishing`
sends. Packed here rather than by redis-py: its asyncio client packs each
argument in Python (about a microsecond each), and a batch has a few
arguments per event. Whatever the script needs per route (its streams and the
fixed pieces of its wire items, from :mod:`fleetcast.protocol.wire`, the wire
format's one author) is packed once per route and memoized.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Final, NamedTuple

from fleetcast.consumer import processing, state
from fleetcast.protocol import keys, rooms, wire

SCRIPT: Final = resources.files("fleetcast.consumer").joinpath("publish.lua").read_text()


SCRIPT_SHA: Final = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()


#: Events per pub/sub message: keeps one message (and a gateway's parse) small.
EVENTS_PER_MESSAGE: Final = 200


#: A stream's TTL is set to the history TTL plus this share of it, and set again
#: only once that slack has passed: the stream then always outlives its last event
#: by between 1x and 1.1x the TTL, for one EXPIRE per stream per slack instead of
#: one per batch (an EXPIRE costs Redis more than the XADD's Lua call around it).
HISTORY_TTL_SLACK: Final = 0.1


#: How many keys every org call has before its streams (fence, channel, sequence, snapshot).
ORG_KEYS: Final = 6


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds the script applies (settings, defaulting to keys.py's constants)."""

    history_maxlen: int = keys.HISTORY_MAXLEN
    history_ttl_s: int = keys.HISTORY_TTL_S
    fence_ttl_s: int = keys.FENCE_TTL_S
    fleet_asset_ttl_s: int = keys.FLEET_ASSET_TTL_S
    fleet_max_assets: int = keys.FLEET_MAX_ASSETS
    events_per_message: int = EVENTS_PER_MESSAGE
    state_ttl_s: int = keys.STATE_TTL_S
    #: A user room's history (its inbox) outlives its last event this long (at least
    #: ``history_ttl_s``): a unit back from hours in a dead zone still finds its tasks.
    inbox_ttl_s: int = keys.INBOX_TTL_S


def bulk(value: bytes) -> bytes:
    """One RESP bulk string."""
    return b"$%d\r\n%b\r\n" % (len(value), value)


@functools.cache
def bulk_header(length: int) -> bytes:
    """A bulk string's header: followed by the value and CRLF, the value is not copied.

    Cached: envelopes come in a few hundred lengths.
    """
    return b"$%d\r\n" % length


CRLF: Final = b"\r\n"


def text(value: str | int) -> bytes:
    return bulk(str(value).encode())


def fence_field(topic: str, partition: int) -> str:
    return f"{topic}:{partition}"


class PackedRoute(NamedTuple):
    """A route's part of an event's arguments, packed once: count, streams, pieces.

    ``arguments`` counts the event's envelope too, which follows ``packed``.
    A tuple of atomic values, like :class:`processing.Route`: untracked by the
    collector once it has seen it.
    """

    packed: bytes
    arguments: int
    streams: tuple[str, ...]
    #: Per stream: whether it is a user room's (an inbox, kept longer).
    inboxes: tuple[bool, ...]
    #: "position" or "status", and the packed asset id, for the fleet snapshot.
    snapshot: str | None
    asset: bytes


def pack_route(route: processing.Route, traceparent: str | None = None) -> PackedRoute:
    """A route's arguments; with a ``traceparent``, one traced event's (never memoized)."""
    streams = tuple(keys.history_stream(room) for room in route.history)
    pieces = wire.item_pieces(route.rooms, route.history, traceparent)
    arguments = [text(len(streams)), *(text(s) for s in streams), *map(bulk, pieces)]
    return PackedRoute(
        packed=b"".join(arguments),
        arguments=len(arguments) + 1,
        streams=streams,
        inboxes=tuple(rooms.parse_room(room).kind is rooms.RoomKind.USER for room in route.history),
        snapshot=route.snapshot,
        asset=text(route.asset_id or ""),
    )


@dataclass(slots=True)
class OrgCall:
    """One packed EVALSHA: one org's events of a batch, and the history streams it refreshes."""

    org: str
    routed: Sequence[processing.Routed]
    packed: bytes = b""
    #: Streams whose TTL this call sets.
    refreshed: list[str] = field(default_factory=list)
    #: Task tables the script asked to be declared (a task's owner on record).
    extra: tuple[str, ...] = ()

    @property
    def key(self) -> str:
        """A key of the call's slot (where a cluster sends it): the org's sequence."""
        return keys.org_sequence(self.org)


@dataclass(slots=True)
class Call:
    """A batch's events as one script call per org, and when it was encoded (monotonic s)."""

    routed: Sequence[processing.Routed]
    orgs: list[OrgCall] = field(default_factory=list)
    at: float = 0.0


class Encoder:
    """Builds the script's keys (``KEYS``) and arguments (``ARGV``), one call per org.

    KEYS: the org's fence, channel, sequence, the three snapshot keys, then every
    history stream of the call and every state key its changes may touch (a table, the
    task owners, the task tables of the users a task event names; a task's owner on
    record the event does not name, the script asks for:
    :data:`fleetcast.consumer.publishing.UNDECLARED`). ARGV: a header (history field,
    MAXLEN, stream TTL, fleet TTL and cap, events per message, fence TTL, the wire item
    separator, message tail and the pieces around a message's time, the publish command,
    the inbox streams' TTL); the org's wire message head; the partitions (count, then
    per partition its fence field and first and last offset); the state changes (count;
    if any, the task owners key, the prefix of a user's tasks key and the tables' TTL,
    then per change: kind, table key ("" for tasks: the owner's), item, event number,
    owner), ahead of the events so the script checks them before it writes; the event
    count, the events, the streams to refresh (count, names; then the inbox streams
    likewise), the latest positions and statuses (count, then pairs of asset and the
    number of its latest event in the call, from 1). An event is its stream count ``k``,
    ``k`` streams, ``k + 1`` item pieces, envelope."""

    def __init__(
        self,
        limits: Limits,
        cluster_id: str,
        publish_command: str = "PUBLISH",
        max_routes: int = 100_000,
    ) -> None:
        self._limits = limits
        self._cluster_id = cluster_id
        self.fence_ttl_s = limits.fence_ttl_s
        self._slack_s = max(1, int(limits.history_ttl_s * HISTORY_TTL_SLACK))
        self._header = [
            text(keys.HISTORY_FIELD),
            text(limits.history_maxlen),
            text(limits.history_ttl_s + self._slack_s),
            text(limits.fleet_asset_ttl_s),
            text(limits.fleet_max_assets),
            text(limits.events_per_message),
            text(limits.fence_ttl_s),
            bulk(wire.ITEM_SEPARATOR),
            bulk(wire.MESSAGE_TAIL),
            bulk(wire.MESSAGE_TIME),
            bulk(wire.MESSAGE_EVENTS),
            text(publish_command),
            text(max(limits.inbox_ttl_s, limits.history_ttl_s) + self._slack_s),
        ]
        self._routes: dict[processing.Route, PackedRoute] = {}
        self._orgs: dict[str, tuple[bytes, bytes]] = {}
        self._max_routes = max_routes
        #: stream -> when this process last set its TTL (monotonic seconds).
        self._refreshed: dict[str, float] = {}

    def encode(self, routed: Sequence[processing.Routed], now: float) -> Call:
        call = Call(routed, at=now)
        for org, items in processing.by_org(routed).items():
            call.orgs.append(self.encode_org(org, items, now))
        return call

    def encode_org(
        self,
        org: str,
        items: Sequence[processing.Routed],
        now: float,
        extra: tuple[str, ...] = (),
    ) -> OrgCall:
        """One org's EVALSHA (see the class docstring); ``extra``: more keys to declare."""
        call = OrgCall(org, items, extra=extra)
        fixed, head = self._orgs.get(org) or self._pack_org(org)
        parts = [*self._header, head]
        count = len(parts) + self._partitions(items, parts)
        declared: dict[str, None] = dict.fromkeys(extra)
        body: list[bytes] = []
        events, changes = self._events(items, body, call, declared, now)
        count += self._state(org, changes, parts, declared) + events
        parts += body
        declared_keys = [text(key) for key in declared]
        nkeys = ORG_KEYS + len(declared_keys)
        call.packed = b"*%d\r\n%b%b%b%b%b" % (
            count + nkeys + 3,
            bulk(b"EVALSHA"),
            text(SCRIPT_SHA),
            text(nkeys),
            fixed,
            b"".join(declared_keys),
        ) + b"".join(parts)
        return call

    def confirm(self, call: OrgCall, at: float) -> None:
        """The call succeeded: its streams' TTLs are set until the next slack."""
        for stream in call.refreshed:
            self._refreshed[stream] = at

    def forget_refreshes(self) -> None:
        """Redis may have lost state (it failed or restarted): set every TTL again."""
        self._refreshed.clear()

    @staticmethod
    def _partitions(routed: Sequence[processing.Routed], parts: list[bytes]) -> int:
        """The fence section; returns how many arguments."""
        spans: dict[tuple[str, int], list[int]] = {}
        for item in routed:
            span = spans.get((item.topic, item.partition))
            if span is None:
                spans[(item.topic, item.partition)] = [item.offset, item.offset]
            else:
                span[1] = item.offset
        parts.append(text(len(spans)))
        for (topic, partition), (first, last) in spans.items():
            parts += [text(fence_field(topic, partition)), text(first), text(last)]
        return 1 + 3 * len(spans)

    def _events(
        self,
        items: Sequence[processing.Routed],
        parts: list[bytes],
        call: OrgCall,
        declared: dict[str, None],
        now: float,
    ) -> tuple[int, list[tuple[int, processing.Routed, state.Op]]]:
        """The events, refreshes and snapshot sections; collects the streams into
        ``declared``; returns how many arguments, and the state changes (event number,
        event, change)."""
        parts.append(text(len(items)))
        count = 1
        latest: dict[str | None, dict[bytes, int]] = {"position": {}, "status": {}, None: {}}
        changes: list[tuple[int, processing.Routed, state.Op]] = []
        refresh: dict[str, bool] = {}  # stream -> it is an inbox
        due = now - self._slack_s
        refreshed, extend = self._refreshed, parts.extend
        for number, item in enumerate(items, 1):  # the hot loop: one event
            if item.traceparent is None:
                packed = self._routes.get(item.route) or self._pack(item.route)
            else:  # a traced event: its wire item carries its span's context
                packed = pack_route(item.route, item.traceparent)
            envelope = item.envelope_json
            extend((packed.packed, bulk_header(len(envelope)), envelope, CRLF))
            count += packed.arguments
            for stream, inbox in zip(packed.streams, packed.inboxes, strict=True):
                declared[stream] = None
                if refreshed.get(stream, due) <= due:
                    refresh[stream] = inbox
            latest[packed.snapshot][packed.asset] = number
            if item.state:
                changes += ((number, item, op) for op in item.state)
        call.refreshed += refresh
        for inboxes in (False, True):
            streams = [stream for stream, inbox in refresh.items() if inbox is inboxes]
            parts.append(text(len(streams)))
            parts += [text(stream) for stream in streams]
        count += 2 + len(refresh)
        for kind in ("position", "status"):
            assets = latest[kind]
            parts.append(text(len(assets)))
            for asset, number in assets.items():
                parts += [asset, text(number)]
            count += 1 + 2 * len(assets)
        return count, changes

    def _state(
        self,
        org: str,
        changes: list[tuple[int, processing.Routed, state.Op]],
        parts: list[bytes],
        declared: dict[str, None],
    ) -> int:
        """The org's state changes (see the class docstring); declares the tables they
        name; returns how many arguments."""
        parts.append(text(len(changes)))
        if not changes:
            return 1
        owners = keys.task_owners(org)
        parts += [text(owners), text(keys.user_tasks(org, "")), text(self._limits.state_ttl_s)]
        for number, item, op in changes:
            if op.table == state.TASKS:
                table = ""
                declared[owners] = None
                for user in _task_users(item, op):
                    declared[keys.user_tasks(org, user)] = None
            else:
                table = keys.state_table(org, op.table)
                declared[table] = None
            parts += [text(op.kind), text(table), text(op.item), text(number), text(op.owner)]
        return 4 + 5 * len(changes)

    def _pack_org(self, org: str) -> tuple[bytes, bytes]:
        """An org's fixed keys (fence, channel, sequence, snapshot) and wire message head."""
        if len(self._orgs) >= self._max_routes:
            self._orgs.clear()
        fixed = b"".join(
            text(key)
            for key in (
                keys.publish_fence(self._cluster_id, org),
                keys.org_channel(org),
                keys.org_sequence(org),
                keys.fleet_positions(org),
                keys.fleet_statuses(org),
                keys.fleet_last_seen(org),
            )
        )
        packed = self._orgs[org] = (fixed, bulk(wire.message_head(org)))
        return packed

    def _pack(self, route: processing.Route) -> PackedRoute:
        if len(self._routes) >= self._max_routes:
            self._routes.clear()
        packed = self._routes[route] = pack_route(route)
        return packed


def _task_users(item: processing.Routed, op: state.Op) -> list[str]:
    """The users whose task tables a task change may touch, as far as the event tells:
    its owner and the users of its rooms (a completion names no owner, its room does).
    The owner on record may be another (a reassignment): the script then asks for it."""
    users = [op.owner] if op.owner else []
    for name in item.route.rooms:
        room = rooms.parse_room(name)
        if room.kind is rooms.RoomKind.USER and room.entity is not None:
            users.append(room.entity)
    return users
