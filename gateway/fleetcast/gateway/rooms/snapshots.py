"""The fleet snapshot: the latest position and status of every asset of an org, from Redis.

The consumer keeps it (``keys.fleet_positions/statuses/last_seen``), updated
in the same script that publishes each batch, so a gateway serves a map that
is complete at once without ever reading Kafka. One read is one MULTI (Redis
time, the last-seen set, both hashes): consistent with what has been
published, since the consumer's script is atomic too.

Reads are coalesced per org: while one is in flight, every fleet subscribe of
that org that arrives waits for the *next* read, which starts when the
current one ends and at least :data:`READ_SPACING_S` after it started. A
storm of consoles then costs a few reads, not one each, and every
subscriber's read was sent after it joined the room (so nothing published
before it joined is missing from its snapshot). The decoded snapshot and its
encoded frame are shared by every subscriber of one read; what each of them
was sent live during the read goes out after it as a catch-up batch of its
own (:func:`catch_up`), so the 470 KB frame of a large org is encoded once
per read, not once per console.
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

#: Reads of one org's snapshot start at least this far apart. A read of a
#: 2,500-asset org costs the gateway ~5-10 ms of CPU: this caps it at a few
#: reads a second however many consoles arrive, and delays a console's map
#: by at most this much, only when another console of its org just got one.
READ_SPACING_S: Final = 0.25

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
    #: The encoded frame text, built once and shared by every subscriber of the read.
    text: str | None = None


def catch_up(snapshot: Snapshot, held: Iterable[Mapping[str, Envelope]]) -> dict[str, Envelope]:
    """Of the positions batched to a subscriber during its read, those the snapshot lacks.

    Latest per asset; a position older than the snapshot's own for that asset
    is left out (the read came after it), one not older goes in (the read may
    have come first). Sent after the snapshot, they leave the subscriber's map
    as if they had been folded into it.
    """
    owed: dict[str, Envelope] = {}
    for moved in held:
        for asset, event in moved.items():
            current = owed.get(asset) or snapshot.positions.get(asset)
            if current is None or not is_older(event, current):
                owed[asset] = event
    return owed


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
        self,
        source: SnapshotSource,
        spawn: Spawn,
        *,
        ttl_s: float,
        max_assets: int,
        spacing_s: float = READ_SPACING_S,
    ) -> None:
        self._source = source
        self._ttl_s = ttl_s
        self._max = max_assets
        self._reads: Coalescer[str, Snapshot] = Coalescer(
            self._read_once, spawn, "fleet-snapshot", spacing_s=spacing_s
        )

    @property
    def reads(self) -> int:
        return self._reads.reads

    async def read(self, org: str) -> Snapshot:
        """The org's snapshot from a read sent after this call; raises if Redis failed."""
        return await self._reads.get(org)

    async def _read_once(self, org: str) -> Snapshot:
        raw = await self._source.fetch(org)
        return await decode(org, raw, self._ttl_s, self._max)
