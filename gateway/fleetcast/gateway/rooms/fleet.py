"""The fleet room: a map's view of every asset of an org, batched.

Positions are 96-98% of all deliveries, and a dispatch console watching 2,500
units does not need 350 frames a second to draw them. So positions routed to
an org's fleet room do not go out one by one: :class:`FleetBatcher` keeps the
latest position of each asset that moved (conflation: latest wins) and, once
per interval, encodes one ``asset_positions`` event per org and hands that
same frame to every member of the room. A batch costs O(assets moved), once
per org, plus one hand-over per member. Everything else sent to the fleet
room (``asset_status_changed``) goes out at once through the normal path, and
asset rooms keep one frame per position.

A member whose previous batch is still waiting in its outbox (a slow client)
is not sent another: the positions it missed are merged into what it is
owed, latest per asset, and go out as one batch of its own once it caught
up. Its memory is then bounded by the org's assets, not by time.

:class:`FleetRoom` is the subscribe side: a client that joins the fleet room
first receives a ``fleet_snapshot`` (see :mod:`fleetcast.gateway.rooms.snapshots`),
and batches flushed while its snapshot is being read are held, then sent right
after the snapshot as one catch-up batch (the positions the snapshot lacks),
so the snapshot always comes first, nothing is missed, and the snapshot frame
stays the one every subscriber of that read shares.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from fleetcast.gateway.metrics import NS, Metrics
from fleetcast.gateway.rooms.delivery import Sender
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.rooms.snapshots import (
    Snapshot,
    SnapshotReader,
    Spawn,
    catch_up,
    empty,
    iso,
)
from fleetcast.gateway.transport.packets import Frame, encode_event
from fleetcast.protocol import events, rooms

log = structlog.stdlib.get_logger(__name__)

SNAPSHOT_TYPE: Final = "fleet_snapshot"
BATCH_TYPE: Final = events.POSITIONS_BATCH_TYPE
CLIENT_ROOM: Final = rooms.RoomKind.FLEET.value

Envelope = Mapping[str, Any]
#: Asset id -> latest position envelope, in the order assets first moved.
Moved = dict[str, Envelope]


class FleetMetrics:
    """The fleet room's own figures, in the gateway's metrics registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.batches = Counter(f"{NS}_fleet_batches", "asset_positions events encoded", registry=r)
        self.batched = Counter(
            f"{NS}_fleet_batched_positions", "Positions sent in fleet batches", registry=r
        )
        self.conflated = Counter(
            f"{NS}_fleet_conflated_positions",
            "Positions replaced by a newer one of the same asset before their batch",
            registry=r,
        )
        self.behind = Counter(
            f"{NS}_fleet_catch_up_batches",
            "Per-connection batches sent to members that fell behind",
            registry=r,
        )
        self.snapshots = Counter(
            f"{NS}_fleet_snapshots", "Snapshots sent, by result", ["result"], registry=r
        )
        self.snapshot_seconds = Histogram(
            f"{NS}_fleet_snapshot_seconds",
            "From a fleet subscribe to its snapshot handed to the connection",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5),
            registry=r,
        )


# --- payloads (pure) ------------------------------------------------------------


def item(event: Envelope) -> dict[str, Any]:
    """One entry of a batch or snapshot: the event's ``data`` plus its ``occurred_at``."""
    return {**event["data"], "occurred_at": event.get("occurred_at")}


def batch_frame(org: str, moved: Iterable[Envelope], batched_at: str) -> Frame:
    """One ``asset_positions`` event: the latest position of each asset that moved."""
    payload = {
        "event_type": BATCH_TYPE,
        "organization_id": org,
        "room": CLIENT_ROOM,
        "batched_at": batched_at,
        "data": {"positions": [item(event) for event in moved]},
    }
    return Frame(encode_event(BATCH_TYPE, payload), priority=False)


def snapshot_frame(snapshot: Snapshot) -> Frame:
    """The ``fleet_snapshot`` event; priority, so it is never shed nor queued behind positions."""
    text = snapshot.text
    if text is None:
        payload = {
            "event_type": SNAPSHOT_TYPE,
            "organization_id": snapshot.org,
            "room": CLIENT_ROOM,
            "taken_at": snapshot.taken_at,
            "data": {
                "positions": [item(event) for event in snapshot.positions.values()],
                "statuses": [item(event) for event in snapshot.statuses.values()],
                "complete": snapshot.complete,
            },
        }
        text = snapshot.text = encode_event(SNAPSHOT_TYPE, payload)
    return Frame(text, priority=True)


def now_iso() -> str:
    return iso(datetime.now(UTC))


# --- the batcher ---------------------------------------------------------------------


class FleetBatcher:
    """Collects fleet-room positions per org and flushes them once per interval."""

    def __init__(
        self,
        registry: Registry,
        sender: Sender,
        metrics: Metrics,
        fleet_metrics: FleetMetrics,
        *,
        interval_s: float,
    ) -> None:
        self._registry = registry
        self._sender = sender
        self._metrics = metrics
        self._fm = fleet_metrics
        self.interval_s = interval_s
        self._moved: dict[str, Moved] = {}
        #: Members whose snapshot is being read: the batches they would have got.
        self._held: dict[str, list[Moved]] = {}
        #: Members that fell behind: what they are owed, latest per asset.
        self._owed: dict[str, tuple[Connection, Moved]] = {}

    def add(self, org: str, event: Envelope) -> None:
        """A position routed to ``org``'s fleet room; it replaces the asset's previous one."""
        data = event.get("data")
        asset = data.get("asset_id") if isinstance(data, dict) else None
        if not isinstance(asset, str):
            return
        moved = self._moved.get(org)
        if moved is None:
            moved = self._moved[org] = {}
        elif asset in moved:
            self._fm.conflated.inc()
        moved[asset] = event

    def hold(self, conn: Connection) -> bool:
        """Keep ``conn``'s batches aside while its snapshot is read; False if already held."""
        if conn.sid in self._held:
            return False
        self._held[conn.sid] = []
        return True

    def release(self, conn: Connection) -> list[Moved]:
        return self._held.pop(conn.sid, [])

    def flush(self) -> int:
        """Send this interval's batches; returns the frames handed to connections."""
        pending, self._moved = self._moved, {}
        batched_at = now_iso()
        sent = 0
        for org, moved in pending.items():
            sent += self._flush_org(org, moved, batched_at)
        sent += self._settle_owed(batched_at)
        if sent:
            self._metrics.deliveries.inc(sent)
        return sent

    def _flush_org(self, org: str, moved: Moved, batched_at: str) -> int:
        members = self._registry.members(rooms.fleet_room(org).name)
        frame: Frame | None = None
        sent = 0
        for sid, conn in members.items():
            held = self._held.get(sid)
            if held is not None:
                held.append(moved)
            elif sid in self._owed or conn.bulk:
                self._owe(conn, moved)
            else:
                if frame is None:
                    frame = batch_frame(org, moved.values(), batched_at)
                    self._fm.batches.inc()
                    self._fm.batched.inc(len(moved))
                self._sender.push(conn, frame)
                sent += 1
        return sent

    def _owe(self, conn: Connection, moved: Moved) -> None:
        owed = self._owed.get(conn.sid)
        if owed is None or owed[0] is not conn:
            self._owed[conn.sid] = (conn, dict(moved))
        else:
            owed[1].update(moved)

    def _settle_owed(self, batched_at: str) -> int:
        """Members that caught up get what they missed, as one batch of their own."""
        sent = 0
        for sid, (conn, owed) in list(self._owed.items()):
            gone = conn.close_reason is not None or self._registry.get(sid) is not conn
            if gone or rooms.fleet_room(conn.org).name not in conn.rooms:
                del self._owed[sid]
            elif not conn.bulk:
                del self._owed[sid]
                self._sender.push(conn, batch_frame(conn.org, owed.values(), batched_at))
                self._fm.behind.inc()
                self._fm.batched.inc(len(owed))
                sent += 1
        return sent

    async def run(self) -> None:
        """Flush on a steady schedule until cancelled (the app's cleanup context owns it)."""
        due = time.monotonic()
        while True:
            due += self.interval_s
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            try:
                self.flush()
            except Exception:  # one bad batch never stops the map
                log.exception("fleet batch failed")
            due = max(due, time.monotonic() - self.interval_s)  # never a burst of catch-ups


# --- subscribing --------------------------------------------------------------------


class FleetRoom:
    """A fleet subscribe: hold the member's batches, read the snapshot, send it first."""

    def __init__(
        self,
        batcher: FleetBatcher,
        reader: SnapshotReader,
        sender: Sender,
        fleet_metrics: FleetMetrics,
        spawn: Spawn,
    ) -> None:
        self._batcher = batcher
        self._reader = reader
        self._sender = sender
        self._fm = fleet_metrics
        self._spawn = spawn

    def resend(self, conn: Connection) -> None:
        """A fresh snapshot for a member whose batches may have missed positions (a gap)."""
        self._spawn(self.joined(conn, rooms.fleet_room(conn.org)), f"fleet-resend-{conn.sid}")

    async def joined(self, conn: Connection, room: rooms.Room) -> dict[str, Any]:
        """Called right after ``conn`` joined ``room``; returns fields for the ack.

        The hold starts before the first await, so a batch flushed while the
        snapshot is read goes out after it (as a catch-up batch) rather than
        ahead of it.
        """
        started = time.monotonic()
        if not self._batcher.hold(conn):
            return {}  # a snapshot for this connection is already on its way
        snapshot: Snapshot | None = None
        try:
            snapshot = await self._reader.read(conn.org)
        except Exception:  # Redis away: the client still gets what arrives live
            snapshot = None
        finally:
            held = self._batcher.release(conn)
        if room.name not in conn.rooms or conn.close_reason is not None:
            return {}
        if snapshot is None:
            snapshot = empty(conn.org)
        owed = catch_up(snapshot, held)
        self._sender.push(conn, snapshot_frame(snapshot))
        if owed:
            self._sender.push(conn, batch_frame(conn.org, owed.values(), now_iso()))
            self._fm.batched.inc(len(owed))
        self._fm.snapshots.labels("complete" if snapshot.complete else "partial").inc()
        self._fm.snapshot_seconds.observe(time.monotonic() - started)
        assets = len(snapshot.positions.keys() | owed.keys())
        return {"snapshot": {"assets": assets, "complete": snapshot.complete}}
