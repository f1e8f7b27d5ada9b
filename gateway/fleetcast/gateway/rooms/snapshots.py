"""The fleet snapshot: the latest position and status of every asset of an org, from Redis.

The consumer keeps it (``keys.fleet_positions/statuses/last_seen``), updated
in the same script that publishes each batch, so a gateway serves a map that
is complete at once without ever reading Kafka. One read is one MULTI (Redis
time, the last-seen set, both hashes): consistent with what has been
published, since the consumer's script is atomic too.

Reads are coalesced per org: while one is in flight, every fleet subscribe of
that org that arrives waits for the *next* read, which starts when the
current one ends. A storm of consoles then costs a few reads, not one each,
and every subscriber's read was sent after it joined the room (so nothing
published before it joined is missing from its snapshot).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Protocol

import orjson
import structlog

from fleetcast.gateway.rooms.coalesce import Coalescer

log = structlog.stdlib.get_logger(__name__)

#: Entries decoded between two yields to the event loop (a 20,000-asset org
#: must not stall every other client's delivery for tens of milliseconds).
DECODE_CHUNK: Final = 500

Envelope = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RawSnapshot:
    """What one Redis read returned, undecoded."""

    now_ms: int
    last_seen: list[tuple[str, float]]
    positions: Mapping[str, bytes]
    statuses: Mapping[str, bytes]


class SnapshotSource(Protocol):
    """Where snapshots come from (Redis; a fake in unit tests)."""

    async def fetch(self, org: str) -> RawSnapshot: ...


@dataclass(slots=True)
class Snapshot:
    """Decoded latest envelopes by asset; ``complete`` is False when Redis could not be read."""

    org: str
    taken_at: str
    positions: dict[str, Envelope] = field(default_factory=dict)
    statuses: dict[str, Envelope] = field(default_factory=dict)
    complete: bool = True
    #: The encoded frame text, built once and shared by every subscriber without held positions.
    text: str | None = None

    def merged(self, held: Iterable[Mapping[str, Envelope]]) -> Snapshot:
        """A copy with positions that arrived live during the read; the newer of two wins."""
        positions = dict(self.positions)
        for moved in held:
            for asset, event in moved.items():
                current = positions.get(asset)
                if current is None or not is_older(event, current):
                    positions[asset] = event
        return Snapshot(self.org, self.taken_at, positions, dict(self.statuses), self.complete)


def empty(org: str, now: datetime | None = None) -> Snapshot:
    """What a subscriber gets when Redis is away: only what arrives live (``complete`` False)."""
    return Snapshot(org, iso(now or datetime.now(UTC)), complete=False)


def live_assets(raw: RawSnapshot, ttl_s: float, max_assets: int) -> list[str]:
    """Assets seen within ``ttl_s`` (Redis clock), the most recent ``max_assets`` of them.

    Hash entries of an asset missing from the last-seen set are not live
    either (the consumer ages the three keys together; this also covers a
    reader racing an older consumer).
    """
    cutoff = raw.now_ms - ttl_s * 1000
    live = [(score, asset) for asset, score in raw.last_seen if score >= cutoff]
    if len(live) > max_assets:
        live.sort(reverse=True)
        live = live[:max_assets]
    return [asset for _, asset in live]


async def decode(org: str, raw: RawSnapshot, ttl_s: float, max_assets: int) -> Snapshot:
    """Decode the live assets' envelopes, yielding every :data:`DECODE_CHUNK` entries.

    Entries that are not JSON objects or belong to another org are skipped
    (never sent): the snapshot holds what the consumer wrote for this org only.
    """
    taken_at = iso(datetime.fromtimestamp(raw.now_ms / 1000, UTC))
    snapshot = Snapshot(org, taken_at)
    for n, asset in enumerate(live_assets(raw, ttl_s, max_assets), 1):
        for source, target in (
            (raw.positions, snapshot.positions),
            (raw.statuses, snapshot.statuses),
        ):
            blob = source.get(asset)
            event = _envelope(blob, org) if blob is not None else None
            if event is not None:
                target[asset] = event
        if n % DECODE_CHUNK == 0:
            await asyncio.sleep(0)
    return snapshot


def _envelope(blob: bytes, org: str) -> Envelope | None:
    try:
        event = orjson.loads(blob)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(event, dict) or event.get("organization_id") != org:
        return None
    if not isinstance(event.get("data"), dict):
        return None
    return event


def is_older(event: Envelope, than: Envelope) -> bool:
    """True when ``event`` happened strictly before ``than`` (unreadable times are not older)."""
    a, b = _when(event), _when(than)
    return a is not None and b is not None and a < b


def _when(event: Envelope) -> datetime | None:
    value = event.get("occurred_at")
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


Spawn = Callable[[Coroutine[Any, Any, Any], str], object]


class SnapshotReader:
    """Coalesced snapshot reads (see the module docstring and coalesce.py)."""

    def __init__(
        self, source: SnapshotSource, spawn: Spawn, *, ttl_s: float, max_assets: int
    ) -> None:
        self._source = source
        self._ttl_s = ttl_s
        self._max = max_assets
        self._reads: Coalescer[str, Snapshot] = Coalescer(self._read_once, spawn, "fleet-snapshot")

    @property
    def reads(self) -> int:
        return self._reads.reads

    async def read(self, org: str) -> Snapshot:
        """The org's snapshot from a read sent after this call; raises if Redis failed."""
        return await self._reads.get(org)

    async def _read_once(self, org: str) -> Snapshot:
        raw = await self._source.fetch(org)
        return await decode(org, raw, self._ttl_s, self._max)
