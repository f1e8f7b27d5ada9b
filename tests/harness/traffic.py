"""Traffic for the fault suite: a seeded mix of dispatch events, and what each one targets.

:class:`Mix` is pure: given a clock reading it returns the next envelope, of a
realistic mix of the catalog's types over several orgs, each with channels,
incidents, assets and their crews (users). Every event id is unique in a run.
:func:`primes` makes one event per room that reaches that room only, so a
client learns an offset in each of its rooms before a fault (without one it
could not resume a room: see docs/reliability.md).

:class:`Producer` writes the mix to Kafka at a steady rate, keyed by org as
domain services do, and keeps the :class:`Ledger`: when each event was handed
to Kafka and which rooms it targets (:func:`fleetcast.protocol.routing.route`
with the default table), the ground truth the counting clients are checked
against. The fleet room is left out of the targets: it batches positions.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer

from fleetcast.protocol import events, routing
from fleetcast.protocol.rooms import Room, RoomKind

TABLE: Final = routing.RoutingTable.default()

#: Share of each kind of activity. Positions are the bulk, as on a real fleet,
#: but less than the 96 % of a large city so that every room a client is in
#: sees a few events a second at 200 events/s.
WEIGHTS: Final = {"position": 55, "status": 5, "radio": 14, "incident": 10, "task": 8, "alert": 8}
KIND_TYPES: Final = {
    "position": ("asset_position_updated",),
    "status": ("asset_status_changed",),
    "radio": (
        "transmission_started",
        "transmission_completed",
        "transcription_completed",
        "transmission_tagged",
    ),
    "incident": ("incident_created", "incident_updated", "incident_status_changed"),
    "task": ("task_assigned", "task_updated", "task_completed"),
    "alert": ("alert_created", "alert_acknowledged"),
}
STATUSES: Final = ("available", "en_route", "on_scene", "transporting")
#: Room kinds whose single-room prime is known (the fleet room is never counted).
PRIMED_KINDS: Final = frozenset(
    {RoomKind.ORG, RoomKind.USER, RoomKind.CHANNEL, RoomKind.INCIDENT, RoomKind.ASSET}
)


def rfc3339(wall: float) -> str:
    stamp = datetime.fromtimestamp(wall, UTC).isoformat(timespec="milliseconds")
    return stamp.replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Model:
    """The orgs and the entities of each one (the same names in every org)."""

    orgs: tuple[str, ...] = ("org-a", "org-b", "org-c")
    channels: tuple[str, ...] = ("ch-1", "ch-2", "ch-3", "ch-4")
    incidents: tuple[str, ...] = tuple(f"inc-{n}" for n in range(1, 7))
    assets: tuple[str, ...] = tuple(f"unit-{n:02d}" for n in range(1, 13))

    def crew(self, asset: str) -> str:
        """The user who drives ``asset`` (unit-03 -> user-03): tasks go to them."""
        return asset.replace("unit-", "user-")


class Mix:
    """Seeded generator of envelopes; ``next(wall)`` stamps ``occurred_at`` with ``wall``."""

    def __init__(self, model: Model, *, run: str, seed: int = 1) -> None:
        self.model = model
        self._run = run
        self._random = random.Random(seed)
        self._numbers = itertools.count(1)
        self._kinds = list(WEIGHTS)
        self._weights = list(WEIGHTS.values())

    def next(self, wall: float) -> dict[str, Any]:
        org = self._random.choice(self.model.orgs)
        kind = self._random.choices(self._kinds, self._weights)[0]
        event_type = self._random.choice(KIND_TYPES[kind])
        return self.envelope(org, event_type, self._data(event_type), wall)

    def envelope(
        self, org: str, event_type: str, data: dict[str, Any], wall: float
    ) -> dict[str, Any]:
        number = next(self._numbers)
        return {
            "event_id": f"{self._run}-{number:07d}",
            "event_type": event_type,
            "organization_id": org,
            "occurred_at": rfc3339(wall),
            "data": data,
        }

    def _data(self, event_type: str) -> dict[str, Any]:
        pick, m, n = self._random.choice, self.model, next(self._numbers)
        asset = pick(m.assets)
        channel, incident, user = pick(m.channels), pick(m.incidents), m.crew(asset)
        shapes: dict[str, dict[str, Any]] = {
            "asset_position_updated": {
                "asset_id": asset,
                "lat": round(40.7 + self._random.uniform(-0.05, 0.05), 6),
                "lon": round(-74.0 + self._random.uniform(-0.05, 0.05), 6),
                "heading": round(self._random.uniform(0, 360), 1),
                "speed_kmh": round(self._random.uniform(0, 90), 1),
            },
            "asset_status_changed": {"asset_id": asset, "status": pick(STATUSES)},
            "transmission_started": {
                "transmission_id": f"tx-{n}", "channel_id": channel, "asset_id": asset,
                "speaker": user,
            },
            "transmission_completed": {
                "transmission_id": f"tx-{n}", "channel_id": channel, "asset_id": asset,
                "duration_ms": self._random.randint(1500, 12000),
            },
            "transcription_completed": {
                "transmission_id": f"tx-{n}", "channel_id": channel,
                "text": f"{asset} on scene, requesting a second ambulance", "confidence": 0.93,
            },
            "transmission_tagged": {
                "transmission_id": f"tx-{n}", "channel_id": channel, "incident_id": incident,
                "tags": ["priority", "location"],
            },
            "incident_created": {
                "incident_id": incident, "channel_id": channel, "kind": "structure_fire",
                "priority": self._random.randint(1, 4), "status": "dispatched",
            },
            "incident_updated": {"incident_id": incident, "assigned_assets": [asset]},
            "incident_status_changed": {"incident_id": incident, "status": pick(STATUSES)},
            "task_assigned": {
                "task_id": f"task-{n}", "user_id": user, "asset_id": asset,
                "incident_id": incident, "description": "Respond and report on arrival",
            },
            "task_updated": {"task_id": f"task-{n}", "user_id": user, "progress": "en_route"},
            "task_completed": {
                "task_id": f"task-{n}", "user_id": user, "incident_id": incident, "outcome": "done",
            },
            "alert_created": {
                "alert_id": f"alert-{n}", "asset_id": asset, "kind": "man_down",
                "severity": "critical",
            },
            "alert_acknowledged": {"alert_id": f"alert-{n}", "acknowledged_by": "dispatcher-1"},
        }  # fmt: skip
        return shapes[event_type]

    def prime(self, room: Room, wall: float) -> dict[str, Any]:
        """An event whose only target (the fleet room aside) is ``room``."""
        n = next(self._numbers)
        entity = room.entity
        shapes: dict[RoomKind, tuple[str, dict[str, Any]]] = {
            RoomKind.ORG: (
                "alert_acknowledged",
                {"alert_id": f"alert-{n}", "acknowledged_by": "x"},
            ),
            RoomKind.USER: ("task_updated", {"task_id": f"task-{n}", "user_id": entity}),
            RoomKind.CHANNEL: (
                "transcription_completed",
                {"transmission_id": f"tx-{n}", "channel_id": entity, "text": "radio check"},
            ),
            RoomKind.INCIDENT: ("incident_updated", {"incident_id": entity, "note": "check"}),
            RoomKind.ASSET: ("asset_position_updated", {"asset_id": entity, "lat": 0, "lon": 0}),
        }
        if room.kind not in shapes:
            raise ValueError(f"no prime for room kind {room.kind}")
        event_type, data = shapes[room.kind]
        return self.envelope(room.org, event_type, data, wall)


def targets(envelope: Mapping[str, Any]) -> frozenset[str]:
    """Full names of the rooms an envelope goes to, the fleet room left out."""
    decoded = events.validate_envelope(dict(envelope))
    return frozenset(
        room.name for room in routing.route(decoded, TABLE) if room.kind is not RoomKind.FLEET
    )


def latest_wins(envelope: Mapping[str, Any]) -> str | None:
    """The key under which a newer event replaces this one (an asset's position), or None.

    A replay sends each asset's latest position only (rooms/replay.py): a
    resumed map needs where a unit is now, not where it was.
    """
    if envelope.get("event_type") != events.POSITION_TYPE:
        return None
    data = envelope.get("data")
    asset = data.get("asset_id") if isinstance(data, Mapping) else None
    return f"{envelope.get('organization_id')}/{asset}" if isinstance(asset, str) else None


@dataclass(frozen=True, slots=True)
class Produced:
    """One event handed to Kafka: when (monotonic clock), which rooms it targets, and
    the key a newer event of which supersedes it (:func:`latest_wins`)."""

    at: float
    rooms: frozenset[str]
    latest_wins: str | None = None
    #: Its ``event_type``, to say what was lost when something is.
    event_type: str = ""


@dataclass
class Ledger:
    """Every event the producer handed to Kafka and Kafka acknowledged.

    Events whose send failed are kept apart (:attr:`failed`): they may or may
    not be in Kafka, so they are expected by no client.
    """

    confirmed: dict[str, Produced] = field(default_factory=dict)
    pending: dict[str, Produced] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)

    def sent(self, event_id: str, produced: Produced) -> None:
        self.pending[event_id] = produced

    def settled(self, event_id: str, error: BaseException | None) -> None:
        produced = self.pending.pop(event_id)
        if error is None:
            self.confirmed[event_id] = produced
        else:
            self.failed[event_id] = repr(error)


class Producer:
    """Writes the mix to Kafka at ``rate`` events/s until stopped, within bounds.

    Owns one task (:meth:`start` / :meth:`stop`). Sends are idempotent
    (a retried batch is not written twice), so every event id is in Kafka at
    most once and a duplicate seen by a client is the system's.
    """

    def __init__(
        self,
        bootstrap: str,
        topics: Callable[[str], str],
        mix: Mix,
        *,
        rate: float,
        max_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ledger = Ledger()
        self.mix = mix
        self.rate = rate
        self._max_s = max_s
        self._topics = topics
        self._clock = clock
        self._kafka = AIOKafkaProducer(
            bootstrap_servers=bootstrap,
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
            request_timeout_ms=120_000,
        )
        self._task: asyncio.Task[None] | None = None
        self._inflight: set[asyncio.Future[Any]] = set()
        self._stopped = False

    async def start(self) -> None:
        await self._kafka.start()
        self._task = asyncio.create_task(self._run(), name="fault-traffic")

    async def send(self, envelopes: Iterable[dict[str, Any]]) -> None:
        """Hand envelopes to Kafka now and put them in the ledger."""
        for envelope in envelopes:
            event_id = str(envelope["event_id"])
            produced = Produced(
                self._clock(), targets(envelope), latest_wins(envelope), str(envelope["event_type"])
            )
            self.ledger.sent(event_id, produced)
            try:
                future = await self._kafka.send(
                    self._topics(str(envelope["event_type"])),
                    orjson.dumps(envelope),
                    key=str(envelope["organization_id"]).encode(),
                )
            except Exception as exc:  # the ledger says which and why
                self.ledger.settled(event_id, exc)
                continue
            self._inflight.add(future)
            future.add_done_callback(self._settle_callback(event_id))

    def _settle_callback(self, event_id: str) -> Callable[[asyncio.Future[Any]], None]:
        def settle(future: asyncio.Future[Any]) -> None:
            self._inflight.discard(future)
            cancelled = future.cancelled()
            error = asyncio.CancelledError() if cancelled else future.exception()
            self.ledger.settled(event_id, error)

        return settle

    async def _run(self) -> None:
        """Steady ``rate`` in 20 ms ticks; a send that blocks (broker away) is caught up after."""
        tick, started = 0.02, self._clock()
        due_total = 0
        while (elapsed := self._clock() - started) < self._max_s:
            due = int((elapsed + tick) * self.rate) - due_total
            if due > 0:
                due_total += due
                await self.send(self.mix.next(time.time()) for _ in range(due))
            await asyncio.sleep(tick)

    async def stop(self, flush_within_s: float = 120.0) -> None:
        """Stop the steady traffic, then wait (bounded) until Kafka answered every send."""
        if self._stopped:
            return
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(flush_within_s):
                await self._kafka.flush()
                while self._inflight:
                    await asyncio.wait(set(self._inflight))
        await self._kafka.stop()
