"""The Redis edge of the consumer: one script call per batch.

Everything a batch needs in Redis (drop redeliveries, append to each room's
history, update the fleet snapshot, publish per org) happens in one Lua
script (``publish.lua``) in one round trip. One script, not a pipeline,
because the wire message must carry the stream ids XADD just created, and
because a script is atomic: a consumer killed mid-batch leaves either all of
a batch's effects or none.

The batch travels as one length-prefixed blob rather than thousands of
arguments: redis-py packs each argument in Python, which at 50,000 events/s
would cost more than the decoding itself.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Protocol

import orjson

from fleetcast.consumer import processing
from fleetcast.protocol import keys, wire

SCRIPT: Final = resources.files("fleetcast.consumer").joinpath("publish.lua").read_text()
#: Events per pub/sub message: keeps one message (and a gateway's parse) small.
EVENTS_PER_MESSAGE: Final = 200
SNAPSHOT_CODES: Final = {None: b"", "position": b"p", "status": b"s"}


@dataclass(frozen=True, slots=True)
class Limits:
    """The bounds the script applies (settings, defaulting to keys.py's constants)."""

    history_maxlen: int = keys.HISTORY_MAXLEN
    history_ttl_s: int = keys.HISTORY_TTL_S
    seen_ttl_s: int = keys.SEEN_TTL_S
    fleet_asset_ttl_s: int = keys.FLEET_ASSET_TTL_S
    fleet_max_assets: int = keys.FLEET_MAX_ASSETS
    events_per_message: int = EVENTS_PER_MESSAGE


@dataclass(frozen=True, slots=True)
class Outcome:
    published: int
    duplicates: int


class Publisher(Protocol):
    """Where routed events go; raises on failure (nothing then counts as published)."""

    async def publish(self, routed: Sequence[processing.Routed]) -> Outcome: ...


def _field(value: bytes) -> bytes:
    return b"%d:%s" % (len(value), value)


def _text(value: str | int) -> bytes:
    return _field(str(value).encode())


def _prefix(key: Callable[[str], str]) -> str:
    """The constant part of a key function of keys.py (the script appends the id)."""
    prefix = key("")
    assert key("x") == prefix + "x", "key function is not a plain prefix"
    return prefix


SEEN_PREFIX: Final = _prefix(keys.seen_event)
HISTORY_PREFIX: Final = _prefix(keys.history_stream)


class Encoder:
    """Builds the script's input; remembers the encoded form of each distinct route.

    Layout (every field is ``<len>:<bytes>``): a header (wire version, history
    field, key prefixes, bounds, org count), then per org its channel and
    snapshot keys and event count, then per event: event id, snapshot ("" or
    "p"/"s" + asset id), envelope JSON, the rooms as a JSON list, and the
    history rooms (count, then names).
    """

    def __init__(self, limits: Limits, max_routes: int = 100_000) -> None:
        self._header = b"".join(
            [
                _text(wire.VERSION),
                _text(keys.HISTORY_FIELD),
                _text(SEEN_PREFIX),
                _text(HISTORY_PREFIX),
                _text(limits.history_maxlen),
                _text(limits.history_ttl_s),
                _text(limits.seen_ttl_s),
                _text(limits.fleet_asset_ttl_s),
                _text(limits.fleet_max_assets),
                _text(limits.events_per_message),
            ]
        )
        self._routes: dict[tuple[str, ...], bytes] = {}
        self._max_routes = max_routes

    def encode(self, routed: Sequence[processing.Routed]) -> bytes:
        groups = processing.by_org(routed)
        parts = [self._header, _text(len(groups))]
        for org, items in groups.items():
            parts += [
                _text(org),
                _text(keys.org_channel(org)),
                _text(keys.fleet_positions(org)),
                _text(keys.fleet_statuses(org)),
                _text(keys.fleet_last_seen(org)),
                _text(len(items)),
            ]
            for item in items:
                snapshot = SNAPSHOT_CODES[item.snapshot] + (item.asset_id or "").encode()
                parts += [
                    _text(item.event_id),
                    _field(snapshot),
                    _field(item.envelope_json),
                    self._route(item),
                ]
        return b"".join(parts)

    def _route(self, item: processing.Routed) -> bytes:
        encoded = self._routes.get(item.rooms)
        if encoded is None:
            if len(self._routes) >= self._max_routes:
                self._routes.clear()
            rooms_json = orjson.dumps(list(item.rooms))
            history = [_text(room) for room in item.history]
            encoded = _field(rooms_json) + _text(len(history)) + b"".join(history)
            self._routes[item.rooms] = encoded
        return encoded


def encode_batch(routed: Sequence[processing.Routed], limits: Limits) -> bytes:
    """The script's input for one batch (see :class:`Encoder`)."""
    return Encoder(limits).encode(routed)


class RedisPublisher:
    """Publisher over redis-py's asyncio client (``redis.asyncio.Redis``)."""

    def __init__(self, redis: Any, limits: Limits | None = None) -> None:
        self._redis = redis
        self._encoder = Encoder(limits or Limits())
        # register_script re-loads the script by itself after a Redis restart (NOSCRIPT).
        self._script = redis.register_script(SCRIPT)

    async def publish(self, routed: Sequence[processing.Routed]) -> Outcome:
        if not routed:
            return Outcome(0, 0)
        published, duplicates = await self._script(keys=[], args=[self._encoder.encode(routed)])
        return Outcome(int(published), int(duplicates))

    async def ping(self) -> bool:
        return bool(await self._redis.ping())
