"""Gap recovery for connected clients: what the pub/sub stream lost is replayed from history.

Pub/sub loses what is published while a subscriber's connection is down (a
killed connection, a Redis restart, a listener that fell behind). Clients
that stay connected would never know. So each org's messages are numbered
(wire ``seq``), and :class:`GapWatch` notices a gap three ways:

- a message whose number is not the next one (the gap, at once), or a
  number that starts again (a Redis that lost its data);
- after the listener reconnects, the org's counter read from Redis is ahead
  of the last message seen (published while the connection was down);
- *positioning* (as Centrifugo's): every ``interval`` the counters are read,
  and one that stays ahead of what arrived for two checks in a row is a gap
  (the last messages before a silent loss).

:class:`GapRecovery` then pauses the org's live delivery (its events wait,
in order), reads every locally joined room's history after the room's
cursor (the last event delivered to it, or, for a room with none, the
moment it opened) in one MULTI, delivers what is missing once per
connection and in order, and releases the held live events the replay did
not already cover. Where history no longer reaches, the rooms' members get
``resync`` ``{"rooms": [...], "reason", "recovered": false}`` so they can
reload state; fleet-room members get a fresh ``fleet_snapshot``. Nothing is
lost without the client being told.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms import history, merging
from fleetcast.gateway.rooms.delivery import Delivery, Sender
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.transport.packets import Frame, encode_event
from fleetcast.protocol import rooms
from fleetcast.protocol.wire import RoutedEvent

log = structlog.stdlib.get_logger(__name__)

RESYNC: Final = "resync"
#: A room that had no event yet recovers from when it opened, this much earlier:
#: the gateway's clock and Redis's (which makes the offsets) may disagree.
BASELINE_SKEW_MS: Final = 5_000
#: A recovery whose history read fails is tried again after these pauses, then
#: given up with a resync of every joined room (never silently).
RETRY_DELAYS_S: Final = (0.5, 1.0, 2.0, 4.0)

Spawn = Callable[[Coroutine[Any, Any, Any], str], object]


class SequenceReader(Protocol):
    """The orgs' message counters in Redis (redis/streams.py)."""

    async def sequences(self, orgs: Sequence[str]) -> dict[str, int | None]: ...


class FleetResend(Protocol):
    """Sends a fleet-room member a fresh snapshot (fleet.FleetRoom)."""

    def resend(self, conn: Connection) -> None: ...


def resync_frame(client_rooms: Sequence[str], reason: str) -> Frame:
    """The ``resync`` event: these rooms may have missed events; reload their state."""
    payload = {"rooms": sorted(client_rooms), "reason": reason, "recovered": False}
    return Frame(encode_event(RESYNC, payload), priority=True)


def without_covered(routed: RoutedEvent, covered: Mapping[str, history.Offset]) -> RoutedEvent:
    """``routed`` less the rooms whose replay already sent it."""
    kept = tuple(
        room
        for room in routed.rooms
        if room not in covered
        or (offset := routed.offsets.get(room)) is None
        or _after(offset, covered[room])
    )
    if len(kept) == len(routed.rooms):
        return routed
    offsets = {room: o for room, o in routed.offsets.items() if room in kept}
    return RoutedEvent(kept, offsets, routed.event)


def _after(offset: str, cursor: history.Offset) -> bool:
    try:
        return history.parse_offset(offset) > cursor
    except history.OffsetError:
        return True


@dataclass(slots=True)
class _Job:
    reason: str
    lost: bool
    again: bool = False


class GapRecovery:
    """Replays what an org's joined rooms missed; one pass at a time per org (module docstring)."""

    def __init__(
        self,
        registry: Registry,
        delivery: Delivery,
        reader: history.StreamReader,
        sender: Sender,
        metrics: Metrics,
        *,
        spawn: Spawn,
        fleet: FleetResend | None = None,
        retry_delays_s: Sequence[float] = RETRY_DELAYS_S,
    ) -> None:
        self._registry = registry
        self._delivery = delivery
        self._reader = reader
        self._sender = sender
        self._metrics = metrics
        self._spawn = spawn
        self._fleet = fleet
        self._retry_delays = tuple(retry_delays_s)
        self._jobs: dict[str, _Job] = {}

    def request(self, org: str, reason: str, *, lost: bool = False) -> None:
        """Recover ``org`` soon; its live events wait from now on. Coalesces requests."""
        self._delivery.pause(org)
        job = self._jobs.get(org)
        if job is None:
            job = self._jobs[org] = _Job(reason, lost)
            self._spawn(self._run(org, job), f"gap-recovery-{org}")
        else:
            job.again, job.lost = True, job.lost or lost

    @property
    def running(self) -> list[str]:
        return sorted(self._jobs)

    async def _run(self, org: str, job: _Job) -> None:
        try:
            while True:
                job.again = False
                await self._with_retries(org, job)
                if not job.again:
                    return
                self._delivery.pause(org)
        finally:
            self._jobs.pop(org, None)
            self._release(org, {})

    async def _with_retries(self, org: str, job: _Job) -> None:
        for delay in (*self._retry_delays, None):
            try:
                await self.recover(org, job.reason, lost=job.lost)
                return
            except Exception as exc:  # Redis away: the org's events flow on meanwhile
                log.warning("gap recovery failed", org=org, error=repr(exc), retry_in=delay)
                self._metrics.gap_recoveries.labels(job.reason, "failed").inc()
                if delay is None:
                    self._resync_all(org, "recovery_failed")
                    return
                await asyncio.sleep(delay)
                self._delivery.pause(org)

    async def recover(self, org: str, reason: str, *, lost: bool = False) -> None:
        """One pass: read, replay, resync, release (raises if the history cannot be read)."""
        started = time.monotonic()
        self._delivery.pause(org)
        covered: dict[str, history.Offset] = {}
        try:
            since, baselines = self._starts(org)
            recoveries = await history.read_many(
                self._reader, since, baselines=baselines, lost=lost
            )
            replayed = 0
            for routed in merging.merge({n: r.entries for n, r in recoveries.items()}):
                replayed += 1
                self._delivery.deliver_now(org, routed)
            covered = self._cursors(since)
            incomplete = [name for name, r in recoveries.items() if not r.complete]
            self._resync(org, incomplete, "redis_reset" if lost else "history_gap")
            self._refresh_fleet(org)
        finally:
            self._release(org, covered)
        result = "resync" if incomplete else "complete"
        self._metrics.gap_recoveries.labels(reason, result).inc()
        self._metrics.recovered_events.inc(replayed)
        self._metrics.recovery_seconds.observe(time.monotonic() - started)
        log.info(
            "gap recovered",
            org=org,
            reason=reason,
            rooms=len(since),
            replayed=replayed,
            resync=len(incomplete),
        )

    def _starts(self, org: str) -> tuple[dict[str, str], frozenset[str]]:
        """Each joined history room's offset to read after, and which of them are baselines."""
        since, baselines = {}, set()
        for name, local in self._registry.rooms_of(org).items():
            if rooms.is_fleet(name):
                continue
            if local.cursor is not None:
                since[name] = local.cursor
            else:
                since[name] = history.baseline(local.opened_ms, BASELINE_SKEW_MS)
                baselines.add(name)
        return since, frozenset(baselines)

    def _cursors(self, rooms_read: Mapping[str, str]) -> dict[str, history.Offset]:
        """Where the replay left each room it read: held events at or before it were sent."""
        covered = {}
        for name in rooms_read:
            local = self._registry.local(name)
            if local is not None and local.cursor is not None:
                covered[name] = history.parse_offset(local.cursor)
        return covered

    def _release(self, org: str, covered: Mapping[str, history.Offset]) -> None:
        for routed in self._delivery.resume(org).events:
            kept = without_covered(routed, covered)
            if kept.rooms:
                self._delivery.deliver_now(org, kept)

    def _resync(self, org: str, room_names: Sequence[str], reason: str) -> None:
        """Tell each member of these rooms which of its rooms to reload (one event each)."""
        per_conn: dict[str, tuple[Connection, list[str]]] = {}
        for name in room_names:
            for sid, conn in self._registry.members(name).items():
                per_conn.setdefault(sid, (conn, []))[1].append(rooms.client_name(name, org))
        for conn, client_rooms in per_conn.values():
            self._sender.push(conn, resync_frame(client_rooms, reason))
        if per_conn:
            self._metrics.resyncs.inc(len(per_conn))
            log.warning(
                "clients told to resync", org=org, rooms=len(room_names), clients=len(per_conn)
            )

    def _resync_all(self, org: str, reason: str) -> None:
        names = [n for n in self._registry.rooms_of(org) if not rooms.is_fleet(n)]
        self._resync(org, names, reason)
        self._refresh_fleet(org)

    def _refresh_fleet(self, org: str) -> None:
        if self._fleet is None:
            return
        for conn in list(self._registry.members(rooms.fleet_room(org).name).values()):
            self._fleet.resend(conn)


class GapWatch:
    """Knows the last message number seen per org; asks for a recovery when one is missing."""

    def __init__(
        self,
        recovery: GapRecovery,
        reader: SequenceReader,
        metrics: Metrics,
        *,
        spawn: Spawn,
        interval_s: float,
    ) -> None:
        self._recovery = recovery
        self._reader = reader
        self._metrics = metrics
        self._spawn = spawn
        self._interval = interval_s
        self._last: dict[str, int] = {}
        #: Orgs whose counter was ahead at the last positioning check, and by how much.
        self._suspects: dict[str, int] = {}
        self._orgs: set[str] = set()

    # --- the listener's hooks ---------------------------------------------------------

    def observe(self, org: str, seq: int | None) -> None:
        """A message of ``org`` arrived, numbered ``seq`` (before its events are delivered)."""
        if seq is None:
            return
        previous = self._last.get(org)
        self._last[org] = seq
        if previous is None or seq == previous + 1:
            return
        if seq > previous + 1:
            self._gap(org, "gap", missed=seq - previous - 1)
        else:  # the count started again: Redis lost its data (or was flushed)
            self._gap(org, "reset", lost=True)

    def subscribed(self, org: str) -> None:
        """The org's channel is now listened to: learn where its count stands."""
        self._orgs.add(org)
        self._spawn(self._baseline(org), f"gap-baseline-{org}")

    def unsubscribed(self, org: str) -> None:
        self._orgs.discard(org)
        self._last.pop(org, None)
        self._suspects.pop(org, None)

    def connected(self, generation: int) -> None:
        """A new pub/sub connection: what was published while the old one was down?"""
        if generation > 1 and self._orgs:
            self._spawn(self._after_reconnect(sorted(self._orgs)), "gap-check-reconnect")

    # --- the checks ---------------------------------------------------------------------

    async def _baseline(self, org: str) -> None:
        try:
            remote = (await self._reader.sequences([org])).get(org)
        except Exception as exc:  # unknown until the first message: it will say
            log.debug("sequence read failed", org=org, error=repr(exc))
            return
        self._last.setdefault(org, remote or 0)

    async def _after_reconnect(self, orgs: list[str]) -> None:
        try:
            remote = await self._reader.sequences(orgs)
        except Exception as exc:  # cannot tell: recover them all (cheap when nothing is missing)
            log.warning("sequences unreadable after a reconnect", error=repr(exc))
            remote = dict.fromkeys(orgs, -1)
        for org in orgs:
            self._compare(org, remote.get(org), reason="reconnect")

    def _compare(self, org: str, remote: int | None, *, reason: str) -> None:
        last = self._last.get(org)
        if org not in self._orgs or last is None:
            return
        if remote is None:
            if last > 0:  # the counter is gone: Redis lost its data
                self._gap(org, "reset", lost=True)
            self._last[org] = 0
        elif remote == -1 or remote > last:
            self._gap(org, reason, missed=max(0, remote - last))
        elif remote < last:
            self._gap(org, "reset", lost=True)

    async def run(self) -> None:
        """Positioning: every interval, a counter ahead twice in a row is a gap."""
        while True:
            await asyncio.sleep(self._interval)
            orgs = sorted(self._orgs)
            try:
                remote = await self._reader.sequences(orgs)
            except Exception as exc:  # the listener's canary watches Redis itself
                log.debug("positioning read failed", error=repr(exc))
                continue
            self.position(remote)

    def position(self, remote: Mapping[str, int | None]) -> None:
        """One positioning check against the counters read from Redis (pure; tests call it)."""
        suspects, self._suspects = self._suspects, {}
        for org, count in remote.items():
            last = self._last.get(org)
            if count is None or last is None or count <= last:
                continue
            if org in suspects and last < suspects[org]:
                self._gap(org, "positioning", missed=count - last)
            else:
                self._suspects[org] = count

    def _gap(self, org: str, reason: str, *, missed: int = 0, lost: bool = False) -> None:
        self._metrics.gaps.labels(reason).inc()
        log.warning("pub/sub gap", org=org, reason=reason, messages_missed=missed)
        self._recovery.request(org, reason, lost=lost)
