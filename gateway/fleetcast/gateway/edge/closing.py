"""Server-initiated closes: tell the client why, then close, at most once per connection.

A close sends ``disconnect_reason`` ``{code, message, reconnect}`` first. For
reasons after which a client should come back by itself (``slow_consumer``,
``draining``) the transport is then closed *without* a Socket.IO DISCONNECT,
so standard clients reconnect and resume with ``since``; for the others
(``token_expired``) the server disconnects, and clients stay away.

Also here: the expiry sweep (tokens that ran out) and the SIGTERM drain,
which sends the connected clients elsewhere in small groups, not as one storm.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, Protocol

import structlog

from fleetcast.gateway.edge.clients import Clients
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.registry import Connection
from fleetcast.gateway.transport import packets

log = structlog.stdlib.get_logger(__name__)

#: Server-initiated closes after which a client should reconnect by itself.
RECONNECT_REASONS: Final = frozenset({"slow_consumer", "draining", "session_expired"})
CLOSE_MESSAGES: Final = {
    "token_expired": "token expired: connect again with a new token",
    "session_expired": "session too old: connect again (with a fresh token)",
    "slow_consumer": "too far behind: reconnect and resume with since",
    "draining": "gateway shutting down: reconnect (another gateway will answer)",
    "too_many_requests": "too many requests at once or per second",
    "binary_refused": "binary packets are not accepted",
    "protocol_error": "too many packets that are not Socket.IO",
    "revoked": "access revoked: do not reconnect with this token",
}
EXPIRY_SWEEP_S: Final = 1.0
DRAIN_TICK_S: Final = 0.01
#: Share of the drain time over which clients are sent away; the rest lets them go.
DRAIN_SPREAD: Final = 0.5


def drain_due(total: int, sent: int, rate: float, elapsed: float, spread: float) -> int:
    """How many of ``total`` clients should have been sent away ``elapsed`` s into a drain."""
    if rate <= 0 or elapsed >= spread:
        return total
    return min(total, max(sent, math.floor(rate * elapsed) + 1))


class ClosingTransport(Protocol):
    """What closing needs of the transport (transport/writer.py)."""

    def write(self, conn: Connection, text: str) -> bool: ...

    async def abort(self, conn: Connection) -> None: ...


Spawn = Callable[[Coroutine[Any, Any, Any], str], object]


@dataclass(frozen=True, slots=True)
class DrainReport:
    """How a drain ended: the pod's termination message, which the operator shows as lastDrain."""

    connections: int
    rate: float
    #: Seconds from the first client sent away to the last.
    seconds: float
    #: Clients still connected when the drain stopped waiting for them to leave.
    remaining: int

    def message(self) -> str:
        return json.dumps(
            {
                "connections": self.connections,
                "rate": round(self.rate, 1),
                "seconds": round(self.seconds, 3),
                "remaining": self.remaining,
            },
            separators=(",", ":"),
        )


class Closer:
    """Closes connections with a reason; owns the expiry sweep and the drain."""

    def __init__(
        self,
        transport: ClosingTransport,
        disconnect: Callable[[str], Awaitable[None]],
        spawn: Spawn,
        clients: Clients,
        metrics: Metrics,
        *,
        drain_rate: float = 0.0,
        drain_jitter_s: float = 0.0,
    ) -> None:
        self._transport = transport
        self._disconnect = disconnect
        self._spawn = spawn
        self._clients = clients
        self._metrics = metrics
        self._drain_rate = drain_rate
        self._jitter = drain_jitter_s
        self.draining = False

    def cut_off(self, conn: Connection, reason: str) -> None:
        """Tell the client why, then close; at most once per connection."""
        if conn.close_reason is not None:
            return
        conn.close_reason = reason
        self._spawn(self._close(conn, reason), f"close-{conn.sid}")

    async def _close(self, conn: Connection, reason: str) -> None:
        reconnect = reason in RECONNECT_REASONS
        notice: dict[str, Any] = {
            "code": reason,
            "message": CLOSE_MESSAGES.get(reason, reason),
            "reconnect": reconnect,
        }
        if reason == "draining" and self._jitter > 0:
            notice["retry_after"] = round(random.uniform(0, self._jitter), 3)
        self._transport.write(conn, packets.encode_event("disconnect_reason", notice))
        if reconnect:
            await self._transport.abort(conn)
        else:
            await self._disconnect(conn.sid)

    async def run_expiry(self) -> None:
        """Disconnect connections whose token ran out, or whose session is too old."""
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_S)
            now = time.time()
            for client in self._clients:
                if client.session_deadline <= now:  # whatever its (refreshed) token says
                    self.cut_off(client.conn, "session_expired")
                elif client.deadline <= now:
                    self.cut_off(client.conn, "token_expired")

    async def drain(
        self, seconds: float, settle: Callable[[float], Awaitable[None]]
    ) -> DrainReport:
        """SIGTERM: send the connected clients elsewhere in small groups, not as one storm.

        At ``drain_rate`` per second when set (a rollout's hand-over rate), else
        spread over half of ``seconds``; whoever is left when that time is up
        goes at once, so the process still ends within ``seconds``.
        """
        self.draining = True
        self._metrics.draining.set(1)
        conns = [client.conn for client in self._clients]
        spread = seconds * DRAIN_SPREAD
        rate = self._drain_rate or (len(conns) / spread if spread > 0 else 0.0)
        log.info("draining", connections=len(conns), seconds=seconds, rate=round(rate, 1))
        sent, started = 0, time.monotonic()
        while sent < len(conns):
            due = drain_due(len(conns), sent, rate, time.monotonic() - started, spread)
            for conn in conns[sent:due]:
                self.cut_off(conn, "draining")
            sent = due
            if sent < len(conns):
                await asyncio.sleep(DRAIN_TICK_S)
        took = time.monotonic() - started
        await settle(seconds * 0.3)
        return DrainReport(len(conns), rate, took, remaining=len(self._clients))
