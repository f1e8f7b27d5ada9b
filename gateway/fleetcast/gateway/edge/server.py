"""Socket.IO handlers: admission, connection lifecycle, refresh, expiry and drain.

The handlers stay thin: checks live in auth, policy, limits and
subscriptions; delivery in delivery/outbox. A connection becomes visible to
delivery when it is admitted, but frames for it wait in its outbox until
the Socket.IO CONNECT packet is out (:class:`GatewayManager` reports that),
so a client never sees an event before its connection, and its first event
is always ``session``.
"""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass
from typing import Any, Final

import socketio
import structlog

from fleetcast.gateway.edge import admission, auth, policy
from fleetcast.gateway.edge.limits import TokenBucket
from fleetcast.gateway.edge.subscriptions import Ack, Subscriptions
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.redis.fanout import Fanout
from fleetcast.gateway.redis.sessions import SessionStore
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.outbox import Outbox
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.settings import Settings
from fleetcast.gateway.tasks import Tasks
from fleetcast.gateway.transport import engine, packets
from fleetcast.protocol import rooms

log = structlog.stdlib.get_logger(__name__)

#: Server-initiated closes after which a client should reconnect by itself.
RECONNECT_REASONS: Final = frozenset({"slow_consumer", "draining"})
CLOSE_MESSAGES: Final = {
    "token_expired": "token expired: connect again with a new token",
    "slow_consumer": "too far behind: reconnect and resume with since",
    "draining": "gateway shutting down: reconnect (another gateway will answer)",
}
EXPIRY_SWEEP_S: Final = 1.0
DRAIN_TICK_S: Final = 0.01


class Refusal(socketio.exceptions.ConnectionRefusedError):  # type: ignore[misc]
    """A refused handshake; the client's connect_error carries code and message.

    Top-level ``code``/``message`` for clients that read the packet as is,
    and the same under ``data`` for socket.io-client's ``err.data``.
    """

    def __init__(self, code: str, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.code = code
        data: dict[str, Any] = {"code": code, "message": message}
        if retry_after is not None:
            data["retry_after"] = retry_after
        self.error_args = {**data, "data": dict(data)}


class GatewayManager(engine.LeanManager):
    """python-socketio's manager, telling the gateway when CONNECT has been sent."""

    def __init__(self) -> None:
        super().__init__()
        self.on_connected: Any = None

    async def connect(self, sid: str, namespace: str) -> Any:
        result = await super().connect(sid, namespace)
        if namespace == "/" and self.on_connected is not None:
            self.on_connected(sid)
        return result


@dataclass(slots=True)
class Parts:
    """What the gateway is composed of (built in app.py)."""

    settings: Settings
    metrics: Metrics
    registry: Registry
    delivery: Delivery
    outbox: Outbox
    fanout: Fanout
    sessions: SessionStore
    verifier: auth.Verifier
    policy: policy.Policy
    subscriptions: Subscriptions
    tasks: Tasks


class Gateway:
    def __init__(self, sio: Any, parts: Parts) -> None:
        self.sio = sio
        self.p = parts
        self.draining = False
        self.started = time.monotonic()
        s = parts.settings
        self._handshakes = admission.Admission(
            s.handshake_rate, s.handshake_burst, time.monotonic()
        )
        sio.manager.on_connected = self._opened
        for name, handler in (
            ("connect", self.on_connect),
            ("disconnect", self.on_disconnect),
            ("subscribe", self.on_subscribe),
            ("unsubscribe", self.on_unsubscribe),
            ("refresh", self.on_refresh),
        ):
            sio.on(name, handler)

    # --- admission --------------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth_data: Any = None) -> bool:
        try:
            conn = self._admit(sid, environ, auth_data)
        except Refusal as refusal:
            self.p.metrics.refusals.labels(refusal.code).inc()
            raise
        p = self.p
        p.registry.add(conn)
        since = auth_data.get("since") if isinstance(auth_data, dict) else None
        planned = p.subscriptions.hold_at_connect(conn, since)  # before the joins
        for room in policy.automatic_rooms(conn.claims):
            p.registry.join(conn, room.name)
        p.metrics.connects.inc()
        p.metrics.connections.set(len(p.registry))
        p.sessions.touch(sid)
        await p.fanout.acquire(conn.org)
        if isinstance(auth_data, dict) and "since" in auth_data:
            conn.recovered = await p.subscriptions.recover_at_connect(conn, planned)
        return p.registry.get(sid) is conn  # False if it left while we waited

    def _admit(self, sid: str, environ: dict[str, Any], auth_data: Any) -> Connection:
        """Every check a handshake must pass, cheapest first; raises :class:`Refusal`."""
        s, now = self.p.settings, time.monotonic()
        if self.draining:
            raise Refusal("server_full", "gateway is shutting down; connect to another one")
        retry = self._handshakes.take(now)
        if retry > 0:
            raise Refusal("rate_limited", "too many connections at once; retry later", retry)
        if len(self.p.registry) >= s.max_connections:
            raise Refusal("server_full", f"gateway full ({s.max_connections} connections)")
        claims = self._verify(auth.extract_token(auth_data, environ))
        if not self.p.policy.known_roles(claims):
            raise Refusal("forbidden", "no role of this token may connect")
        if self.p.registry.user_connections(claims.org, claims.user) >= s.max_connections_per_user:
            raise Refusal(
                "server_full", f"at most {s.max_connections_per_user} connections per user"
            )
        return Connection(
            sid=sid,
            eio_sid=self.sio.manager.eio_sid_from_sid(sid, "/"),
            claims=claims,
            connected_at=time.time(),
            subscribe_bucket=TokenBucket(s.subscribe_rate, s.subscribe_burst, now),
            deadline=claims.exp + s.jwt_leeway_s,
        )

    def _verify(self, token: str | None) -> auth.Claims:
        try:
            return self.p.verifier.verify(token)
        except auth.AuthError as exc:
            self.p.metrics.auth_failures.labels(exc.code).inc()
            raise Refusal(exc.code, exc.message) from None

    def _opened(self, sid: str) -> None:
        conn = self.p.registry.get(sid)
        if conn is not None:
            self.p.outbox.open(conn, packets.encode_event("session", self.session_info(conn)))

    def session_info(self, conn: Connection) -> dict[str, Any]:
        info = {
            "sid": conn.sid,
            "user": conn.user,
            "org": conn.org,
            "roles": list(conn.claims.roles),
            "rooms": sorted(rooms.parse_room(name).client_name for name in conn.rooms),
            "gateway": self.p.settings.gateway_id,
            "expires_at": conn.claims.exp,
        }
        if conn.recovered is not None:
            info["recovered"] = conn.recovered
        return info

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        p = self.p
        conn = p.registry.remove(sid)
        if conn is None:
            return
        p.outbox.forget(conn)
        p.outbox.transport.release(conn)
        p.sessions.drop(sid)
        label = conn.close_reason or str(reason or "unknown").replace(" ", "_")
        p.metrics.disconnects.labels(label).inc()
        p.metrics.connections.set(len(p.registry))
        await p.fanout.release(conn.org)

    # --- requests -------------------------------------------------------------------

    async def on_subscribe(self, sid: str, data: Any = None) -> Ack:
        conn = self.p.registry.get(sid)
        if conn is None:
            return _not_connected()
        return await self.p.subscriptions.subscribe(conn, data)

    async def on_unsubscribe(self, sid: str, data: Any = None) -> Ack:
        conn = self.p.registry.get(sid)
        if conn is None:
            return _not_connected()
        return self.p.subscriptions.unsubscribe(conn, data)

    async def on_refresh(self, sid: str, data: Any = None) -> Ack:
        """Swap in a new token of the same user and org; rooms it no longer allows are left."""
        conn, p = self.p.registry.get(sid), self.p
        if conn is None:
            return _not_connected()
        try:
            claims = p.verifier.verify(data.get("token") if isinstance(data, dict) else None)
        except auth.AuthError as exc:
            p.metrics.auth_failures.labels(exc.code).inc()
            return {"ok": False, "error": {"code": exc.code, "message": exc.message}}
        if (claims.user, claims.org) != (conn.user, conn.org):
            return _error("forbidden", "a refresh token must be for the same user and org")
        if not p.policy.known_roles(claims):
            return _error("forbidden", "no role of this token may connect")
        conn.claims = claims
        conn.deadline = claims.exp + p.settings.jwt_leeway_s
        left = []
        for name in sorted(conn.rooms):
            room = rooms.parse_room(name)
            if not p.policy.allows(claims, room):
                p.registry.leave(conn, name)
                left.append(room.client_name)
        p.sessions.touch(sid)
        return {"ok": True, "expires_at": claims.exp, "left": left}

    # --- server-initiated closes -------------------------------------------------------

    def cut_off(self, conn: Connection, reason: str) -> None:
        """Tell the client why, then close; at most once per connection."""
        if conn.close_reason is not None:
            return
        conn.close_reason = reason
        self.p.tasks.spawn(self._close(conn, reason), name=f"close-{conn.sid}")

    async def _close(self, conn: Connection, reason: str) -> None:
        reconnect = reason in RECONNECT_REASONS
        notice = {
            "code": reason,
            "message": CLOSE_MESSAGES.get(reason, reason),
            "reconnect": reconnect,
        }
        self.p.outbox.transport.write(conn, packets.encode_event("disconnect_reason", notice))
        if reconnect:
            await self.p.outbox.transport.abort(conn)
        else:
            await self.sio.disconnect(conn.sid)

    async def run_expiry(self) -> None:
        """Disconnect connections whose token ran out (token_expired)."""
        while True:
            await asyncio.sleep(EXPIRY_SWEEP_S)
            now = time.time()
            for conn in self.p.registry:
                if conn.deadline <= now:
                    self.cut_off(conn, "token_expired")

    async def drain(self, seconds: float) -> None:
        """SIGTERM: refuse new clients, send the connected ones elsewhere, spread over time."""
        self.draining = True
        self.p.metrics.draining.set(1)
        conns = list(self.p.registry)
        log.info("draining", connections=len(conns), seconds=seconds)
        spread = seconds * 0.5  # clients leave in small groups, not as one storm
        ticks = max(1, int(spread / DRAIN_TICK_S))
        per_tick = max(1, math.ceil(len(conns) / ticks))
        for start in range(0, len(conns), per_tick):
            for conn in conns[start : start + per_tick]:
                self.cut_off(conn, "draining")
            await asyncio.sleep(spread / ticks)
        await self.p.tasks.settle(seconds * 0.3)

    # --- state for /ready and /stats -------------------------------------------------------

    @property
    def ready(self) -> bool:
        return not self.draining and self.p.fanout.healthy

    def stats(self) -> dict[str, Any]:
        p = self.p
        return {
            "gateway": p.settings.gateway_id,
            "uptime_s": round(time.monotonic() - self.started, 3),
            "ready": self.ready,
            "draining": self.draining,
            "connections": len(p.registry),
            "rooms": len(p.registry.rooms),
            "orgs": p.registry.per_org(),
            "subscribed_orgs": p.fanout.orgs,
            "messages_delivered": p.delivery.delivered,
        }


def _error(code: str, message: str) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message}}


def _not_connected() -> Ack:
    return _error("not_connected", "connection is closing")
