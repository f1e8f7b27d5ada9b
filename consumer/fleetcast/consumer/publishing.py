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

from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Final, Protocol

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


def encode_batch(routed: Sequence[processing.Routed], limits: Limits) -> bytes:
    """The script's input: a header, then per org its keys and events."""
    groups = processing.by_org(routed)
    parts = [
        _text(wire.VERSION),
        _text(keys.HISTORY_FIELD),
        _text(limits.history_maxlen),
        _text(limits.history_ttl_s),
        _text(limits.seen_ttl_s),
        _text(limits.fleet_asset_ttl_s),
        _text(limits.fleet_max_assets),
        _text(limits.events_per_message),
        _text(len(groups)),
    ]
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
            parts += _event_fields(item)
    return b"".join(parts)


def _event_fields(item: processing.Routed) -> list[bytes]:
    fields = [
        _text(keys.seen_event(item.event_id)),
        _field(SNAPSHOT_CODES[item.snapshot]),
        _text(item.asset_id or ""),
        _field(item.envelope_json),
        _text(len(item.rooms)),
    ]
    for room in item.rooms:
        stream = keys.history_stream(room) if room in item.history else ""
        fields += [_text(room), _text(stream)]
    return fields


class RedisPublisher:
    """Publisher over redis-py's asyncio client (``redis.asyncio.Redis``)."""

    def __init__(self, redis: Any, limits: Limits | None = None) -> None:
        self._redis = redis
        self._limits = limits or Limits()
        # register_script re-loads the script by itself after a Redis restart (NOSCRIPT).
        self._script = redis.register_script(SCRIPT)

    async def publish(self, routed: Sequence[processing.Routed]) -> Outcome:
        if not routed:
            return Outcome(0, 0)
        published, duplicates = await self._script(
            keys=[], args=[encode_batch(routed, self._limits)]
        )
        return Outcome(int(published), int(duplicates))

    async def ping(self) -> bool:
        return bool(await self._redis.ping())
