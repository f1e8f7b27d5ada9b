"""Revocations and withdrawals, acted on now (protocol/control.py): cut off, refuse, take away.

Every gateway listens to the control channel (the consumer fans each control
message out there) and keeps a copy of the revocation list:

- a ``revoke`` closes the matching connections here with ``revoked`` (a
  Socket.IO disconnect: clients do not come back by themselves), and from
  then on a handshake with a revoked token (its ``jti``, or a user's token
  issued before the revocation) is refused with ``revoked``;
- a ``withdraw`` takes a room from the matching connections, which receive
  ``access_changed`` ``{"rooms": [...], "reason"}``, and may not join it again
  on this connection.

After its pub/sub connection comes back, the gateway reloads the list and
replays the control log from the last message it saw (what it missed while
away), then checks every connection against the list.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, Protocol

import structlog

from fleetcast.gateway.edge.auth import Claims
from fleetcast.gateway.edge.clients import Client, Clients
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.transport.packets import Frame, encode_event
from fleetcast.protocol import control

log = structlog.stdlib.get_logger(__name__)

ACCESS_CHANGED: Final = "access_changed"

Spawn = Callable[[Coroutine[Any, Any, Any], str], object]


class ControlReader(Protocol):
    """The control log and revocation list in Redis (redis/control.py)."""

    async def revoked(self, now: float) -> list[tuple[str, float]]: ...

    async def log_after(self, last_id: str | None) -> tuple[str | None, list[bytes]]:
        """The messages after ``last_id`` (None: none, only the log's current end) and its id."""
        ...


class Cutter(Protocol):
    def cut_off(self, conn: Connection, reason: str) -> None: ...


class FrameSender(Protocol):
    def push(self, conn: Connection, frame: Frame) -> None: ...


def access_changed_frame(client_rooms: Sequence[str], reason: str) -> Frame:
    payload = {"rooms": sorted(client_rooms), "reason": reason}
    return Frame(encode_event(ACCESS_CHANGED, payload), priority=True)


class Revocations:
    """The gateway's copy of the revocation list, and what control messages do here."""

    def __init__(
        self,
        clients: Clients,
        registry: Registry,
        closer: Cutter,
        sender: FrameSender,
        reader: ControlReader,
        metrics: Metrics,
        *,
        spawn: Spawn,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clients = clients
        self._registry = registry
        self._closer = closer
        self._sender = sender
        self._reader = reader
        self._metrics = metrics
        self._spawn = spawn
        self._clock = clock
        self.list = control.Revoked.empty()
        self._last_id: str | None = None
        self._loaded = False

    @property
    def loaded(self) -> bool:
        """The list has been read from Redis once (/ready waits for it)."""
        return self._loaded

    # --- at the handshake -----------------------------------------------------------------

    def refuses(self, claims: Claims) -> bool:
        return self.list.refuses(claims.org, claims.user, claims.jti, claims.iat, self._clock())

    # --- the control channel (the listener's handler) and reconnections -------------------

    def on_message(self, data: bytes) -> None:
        """``<log id> <json>`` from the control channel."""
        log_id, _, raw = data.partition(b" ")
        try:
            message = control.decode(raw, now=self._clock())
        except control.ControlError as exc:
            log.warning("unreadable control message", error=str(exc))
            return
        self._last_id = log_id.decode(errors="replace") or self._last_id
        self.apply(message)

    def connected(self, generation: int) -> None:
        """A new pub/sub connection: load the list (and, after a break, what was missed)."""
        self._spawn(self.refresh(), "revocations-refresh")

    async def refresh(self) -> None:
        now = self._clock()
        try:
            entries = await self._reader.revoked(now)
            last_id, missed = await self._reader.log_after(self._last_id if self._loaded else None)
        except Exception as exc:  # the next connection tries again; the handshake uses the copy
            log.warning("revocation list not loaded", error=repr(exc))
            return
        fresh = control.Revoked.empty()
        for member, until in entries:
            fresh.add(member, until)
        self.list, self._last_id, self._loaded = fresh, last_id, True
        for raw in missed:
            try:
                self.apply(control.decode(raw, now=now))
            except control.ControlError:
                continue
        self._cut_revoked()

    # --- acting -----------------------------------------------------------------------------

    def apply(self, message: control.Control) -> None:
        self._metrics.controls.labels(message.action).inc()
        if message.action == control.REVOKE:
            for member in control.members(message):
                self.list.add(member, message.until)
            for client in self._matching(message):
                self._closer.cut_off(client.conn, "revoked")
        else:
            self._withdraw(message)
        log.info(
            "control message",
            action=message.action,
            org=message.org,
            user=message.user,
            room=message.room,
            reason=message.reason,
        )

    def _matching(self, message: control.Control) -> list[Client]:
        found = []
        for client in self._clients:
            conn, claims = client.conn, client.claims
            if conn.org != message.org:
                continue
            if (
                (message.session is not None and conn.sid == message.session)
                or (message.user is not None and conn.user == message.user)
                or (message.jti is not None and claims.jti == message.jti)
            ):
                found.append(client)
        return found

    def _withdraw(self, message: control.Control) -> None:
        room = message.target()
        if room is None:
            return
        for conn in list(self._registry.members(room.name).values()):
            if message.user is not None and conn.user != message.user:
                continue
            client = self._clients.get(conn.sid)
            if client is not None:
                client.withdrawn.add(room.name)
            self._registry.leave(conn, room.name)
            self._sender.push(conn, access_changed_frame([room.client_name], message.reason))

    def _cut_revoked(self) -> None:
        for client in self._clients:
            if self.refuses(client.claims):
                self._closer.cut_off(client.conn, "revoked")
