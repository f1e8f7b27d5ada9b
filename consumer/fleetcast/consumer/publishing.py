"""The Redis edge of the consumer: one script call per batch.

Everything a batch needs in Redis (drop redeliveries, append to each room's
history, publish per org, update the fleet snapshot) happens in one Lua
script (``publish.lua``) in one round trip. One script, not a pipeline,
because the wire message must carry the stream ids XADD just created, and
because a script is atomic: a consumer killed mid-batch leaves either all of
a batch's effects or none.

Redeliveries are dropped by a per-partition offset fence (see
:func:`fleetcast.protocol.keys.publish_fence`), not by remembering event ids:
a fence costs one hash field per partition where ids cost a key per event
(45 million keys for 15 minutes at 50,000 events/s).

The wire message's bytes come from :mod:`fleetcast.protocol.wire`'s
templates (its one author); the script only splices stream ids into them.
The call is packed here, as RESP, rather than by redis-py: its asyncio
client packs each argument in Python (about a microsecond each), and a batch
has a few arguments per event. Whatever the script needs per route (its
streams and the fixed pieces of its wire items) is packed once per route.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Final, NamedTuple, Protocol

from redis.exceptions import NoScriptError, RedisError, ResponseError

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
#: Script calls per batch before giving up on a fence that keeps moving (another
#: consumer publishing the same partition: a zombie after a rebalance).
FENCE_ATTEMPTS: Final = 3
#: The script's answer when part of the batch was published before.
FENCED: Final = -1


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


@dataclass(frozen=True, slots=True)
class Outcome:
    published: int
    duplicates: int


class Publisher(Protocol):
    """Where routed events go, in two steps: encode (CPU only, done ahead), then publish.

    ``publish`` raises on failure (nothing then counts as published) and may be
    called again with the same call.
    """

    def encode(self, routed: Sequence[processing.Routed]) -> Call: ...

    async def publish(self, call: Call) -> Outcome: ...

    async def drop_stale_fences(self, ends: Mapping[tuple[str, int], int]) -> list[str]: ...


class FenceMoving(RedisError):
    """The fence moved under every attempt: another consumer publishes these partitions."""


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
class Call:
    """One packed EVALSHA of a batch's events, and the history streams it refreshes."""

    routed: Sequence[processing.Routed]
    packed: bytes = b""
    #: Streams whose TTL this call sets, and when it was encoded (monotonic seconds).
    refreshed: list[str] = field(default_factory=list)
    at: float = 0.0


class Encoder:
    """Builds the script's arguments (``ARGV``) for a batch.

    Layout: a header (history field, MAXLEN, stream TTL, fleet TTL and cap,
    events per message, fence key and TTL, the wire item separator, message
    tail and the pieces around a message's time, the inbox streams' TTL); the
    partitions (count, then per partition its fence field and first and last
    offset); the orgs (count,
    then per org: wire message head, channel, the three snapshot keys, the
    org's sequence key, event count, the events, the streams to refresh (count, names;
    then the inbox streams likewise), the latest
    positions and statuses (count, then pairs of asset and the number of its
    latest event in the org, from 1), the state changes (count; if any, the
    task owners key, the prefix of a user's tasks key and the tables' TTL,
    then per change: kind, table key ("" for tasks: the owner's), item,
    event number, owner)). An event is its stream count ``k``, ``k``
    streams, ``k + 1`` item pieces, envelope.
    """

    def __init__(self, limits: Limits, fence_key: str, max_routes: int = 100_000) -> None:
        self._limits = limits
        self._slack_s = max(1, int(limits.history_ttl_s * HISTORY_TTL_SLACK))
        self._header = [
            text(keys.HISTORY_FIELD),
            text(limits.history_maxlen),
            text(limits.history_ttl_s + self._slack_s),
            text(limits.fleet_asset_ttl_s),
            text(limits.fleet_max_assets),
            text(limits.events_per_message),
            text(fence_key),
            text(limits.fence_ttl_s),
            bulk(wire.ITEM_SEPARATOR),
            bulk(wire.MESSAGE_TAIL),
            bulk(wire.MESSAGE_TIME),
            bulk(wire.MESSAGE_EVENTS),
            text(max(limits.inbox_ttl_s, limits.history_ttl_s) + self._slack_s),
        ]
        self._routes: dict[processing.Route, PackedRoute] = {}
        self._orgs: dict[str, bytes] = {}
        self._max_routes = max_routes
        #: stream -> when this process last set its TTL (monotonic seconds).
        self._refreshed: dict[str, float] = {}

    def encode(self, routed: Sequence[processing.Routed], now: float) -> Call:
        call = Call(routed, at=now)
        parts = [*self._header]
        count = len(parts) + self._partitions(routed, parts)
        groups = processing.by_org(routed)
        parts.append(text(len(groups)))
        count += 1
        for org, items in groups.items():
            count += self._org(org, items, parts, call, now)
        call.packed = b"*%d\r\n%b%b%b" % (
            count + 3,
            bulk(b"EVALSHA"),
            text(SCRIPT_SHA),
            bulk(b"0"),
        ) + b"".join(parts)
        return call

    def confirm(self, call: Call) -> None:
        """The call succeeded: its streams' TTLs are set until the next slack."""
        for stream in call.refreshed:
            self._refreshed[stream] = call.at

    def forget_refreshes(self) -> None:
        """Redis may have lost state (it failed or restarted): set every TTL again."""
        self._refreshed.clear()

    @staticmethod
    def _partitions(routed: Sequence[processing.Routed], parts: list[bytes]) -> int:
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

    def _org(
        self, org: str, items: list[processing.Routed], parts: list[bytes], call: Call, now: float
    ) -> int:
        """One org's arguments (see the class docstring); returns how many."""
        parts.append(self._orgs.get(org) or self._pack_org(org))
        parts.append(text(len(items)))
        count = 7
        latest: dict[str | None, dict[bytes, int]] = {"position": {}, "status": {}, None: {}}
        changes: list[tuple[int, state.Op]] = []
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
                if refreshed.get(stream, due) <= due:
                    refresh[stream] = inbox
            latest[packed.snapshot][packed.asset] = number
            if item.state:
                changes += ((number, op) for op in item.state)
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
        return count + self._state(org, changes, parts)

    def _state(self, org: str, changes: list[tuple[int, state.Op]], parts: list[bytes]) -> int:
        """The org's state changes (see the class docstring); returns how many arguments."""
        parts.append(text(len(changes)))
        if not changes:
            return 1
        parts += [
            text(keys.task_owners(org)),
            text(keys.user_tasks(org, "")),
            text(self._limits.state_ttl_s),
        ]
        for number, op in changes:
            table = "" if op.table == state.TASKS else keys.state_table(org, op.table)
            parts += [text(op.kind), text(table), text(op.item), text(number), text(op.owner)]
        return 4 + 5 * len(changes)

    def _pack_org(self, org: str) -> bytes:
        """An org's fixed arguments: wire message head, channel, snapshot keys, sequence."""
        if len(self._orgs) >= self._max_routes:
            self._orgs.clear()
        packed = self._orgs[org] = bulk(wire.message_head(org)) + b"".join(
            text(key(org))
            for key in (
                keys.org_channel,
                keys.fleet_positions,
                keys.fleet_statuses,
                keys.fleet_last_seen,
                keys.org_sequence,
            )
        )
        return packed

    def _pack(self, route: processing.Route) -> PackedRoute:
        if len(self._routes) >= self._max_routes:
            self._routes.clear()
        packed = self._routes[route] = pack_route(route)
        return packed


def unfenced(
    routed: Sequence[processing.Routed], fences: Mapping[tuple[str, int], int]
) -> list[processing.Routed]:
    """The events above their partition's fence (the others were published before)."""
    return [item for item in routed if item.offset > fences.get((item.topic, item.partition), -1)]


class RedisPublisher:
    """Publisher over redis-py's asyncio client (``redis.asyncio.Redis``).

    ``cluster_id`` is the Kafka cluster's: it names the fence hash. Each call
    gives up after ``timeout_s`` (the client itself should have no
    ``socket_timeout``: see :meth:`_send`).
    """

    def __init__(
        self,
        redis: Any,
        limits: Limits | None = None,
        cluster_id: str = "local",
        timeout_s: float = 5.0,
    ) -> None:
        self._redis = redis
        self._timeout_s = timeout_s
        self.fence_key = keys.publish_fence(cluster_id)
        self._encoder = Encoder(limits or Limits(), self.fence_key)

    def encode(self, routed: Sequence[processing.Routed]) -> Call:
        return self._encoder.encode(routed, time.monotonic())

    async def publish(self, call: Call) -> Outcome:
        duplicates = 0
        for _ in range(FENCE_ATTEMPTS):
            if not call.routed:
                return Outcome(0, duplicates)
            try:
                reply = await self._evalsha(call.packed)
            except BaseException:  # Redis may have lost state (restarted): set TTLs again
                self._encoder.forget_refreshes()
                raise
            if reply[0] != FENCED:
                self._encoder.confirm(call)
                return Outcome(int(reply[0]), duplicates)
            kept = unfenced(call.routed, fences_of(call.routed, reply[1:]))
            duplicates += len(call.routed) - len(kept)
            call = self.encode(kept)
        raise FenceMoving(f"the publish fence moved under {FENCE_ATTEMPTS} attempts")

    async def publish_events(self, routed: Sequence[processing.Routed]) -> Outcome:
        """Encode and publish at once (tests and tools that write as the consumer does)."""
        return await self.publish(self.encode(routed))

    async def drop_stale_fences(self, ends: Mapping[tuple[str, int], int]) -> list[str]:
        """Remove fences at or past their partition's end offset; returns their fields.

        Such a fence belongs to an earlier incarnation of the topic (deleted and
        created again): left alone, it would drop the new topic's first records.
        """
        fields = [fence_field(topic, partition) for topic, partition in ends]
        if not fields:
            return []
        async with asyncio.timeout(self._timeout_s):
            values = await self._redis.hmget(self.fence_key, fields)
        stale = [
            name
            for name, end, value in zip(fields, ends.values(), values, strict=True)
            if value is not None and int(value) >= end
        ]
        if stale:
            async with asyncio.timeout(self._timeout_s):
                await self._redis.hdel(self.fence_key, *stale)
        return stale

    async def _evalsha(self, packed: bytes) -> Any:
        try:
            return await self._send(packed)
        except NoScriptError:  # a new or restarted Redis: load the script, once
            await self._redis.script_load(SCRIPT)
            return await self._send(packed)

    async def _send(self, packed: bytes) -> Any:
        """One packed command on a pooled connection (redis-py's own retries are not used).

        Timed here with one ``asyncio.timeout``: with a ``socket_timeout``, redis-py
        writes from a task of its own, so the request left one loop turn late,
        behind whatever the poller was decoding (measured: 58-65k -> 75-86k events/s).
        """
        pool = self._redis.connection_pool
        connection = await pool.get_connection()
        try:
            async with asyncio.timeout(self._timeout_s):
                await connection.send_packed_command(packed)
                return await connection.read_response()
        except ResponseError:  # an error reply: the connection is fine
            raise
        except BaseException:  # timeout, cancellation, I/O: its state is unknown
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)


def fences_of(
    routed: Sequence[processing.Routed], values: Sequence[Any]
) -> dict[tuple[str, int], int]:
    """The script's fences (in the order :class:`Encoder` sent the partitions)."""
    partitions = list(dict.fromkeys((item.topic, item.partition) for item in routed))
    return {
        partition: int(value)
        for partition, value in zip(partitions, values, strict=True)
        if value is not None
    }
