"""Socket.IO handlers: connect, disconnect, subscribe, unsubscribe, refresh, receipt.

The handlers stay thin: checks live in handshake, auth, policy, limits and
subscriptions; delivery in the rooms layer; closes in closing. A connection
becomes visible to delivery when it is admitted, but frames for it wait in
its outbox until the Socket.IO CONNECT packet is out (:class:`GatewayManager`
reports that), so a client never sees an event before its connection, and its
first event is always ``session``.
"""

from __future__ import annotations

from typing import Any, Protocol

import structlog

from fleetcast.gateway.edge import auth, policy, receipts, subscriptions
from fleetcast.gateway.edge.clients import Client, Clients
from fleetcast.gateway.edge.closing import Closer
from fleetcast.gateway.edge.handshake import Handshake, Refusal
from fleetcast.gateway.edge.subscriptions import Ack, Refused, Resume, Subscriptions
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms import state
from fleetcast.gateway.rooms.outbox import Outbox
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.settings import Settings
from fleetcast.gateway.transport import engine, packets
from fleetcast.protocol import rooms

log = structlog.stdlib.get_logger(__name__)


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


class OrgFeeds(Protocol):
    """The org channels this gateway listens to, by reference count (redis/listener.py)."""

    async def acquire(self, org: str) -> None: ...

    async def release(self, org: str) -> None: ...


class SessionMarks(Protocol):
    """Where session records are kept for cluster-wide stats (redis/sessions.py)."""

    def touch(self, sid: str) -> None: ...

    def drop(self, sid: str) -> None: ...


class Releaser(Protocol):
    """The transport's goodbye to a connection that left (transport/writer.py)."""

    def release(self, conn: Connection) -> None: ...


class Server:
    """Registers the handlers on python-socketio's server and answers each event."""

    def __init__(
        self,
        sio: Any,
        *,
        settings: Settings,
        handshake: Handshake,
        role_policy: policy.Policy,
        clients: Clients,
        registry: Registry,
        outbox: Outbox,
        subscriptions: Subscriptions,
        closer: Closer,
        feeds: OrgFeeds,
        sessions: SessionMarks,
        transport: Releaser,
        metrics: Metrics,
        desk: receipts.Desk,
    ) -> None:
        self._sio = sio
        self._settings = settings
        self._handshake = handshake
        self._policy = role_policy
        self._clients = clients
        self._registry = registry
        self._outbox = outbox
        self._subscriptions = subscriptions
        self._closer = closer
        self._feeds = feeds
        self._sessions = sessions
        self._transport = transport
        self._metrics = metrics
        self._desk = desk
        sio.manager.on_connected = self._opened
        for name, handler in (
            ("connect", self.on_connect),
            ("disconnect", self.on_disconnect),
            ("subscribe", self.on_subscribe),
            ("unsubscribe", self.on_unsubscribe),
            ("refresh", self.on_refresh),
            ("receipt", self.on_receipt),
        ):
            sio.on(name, handler)

    # --- connection lifecycle -------------------------------------------------------

    async def on_connect(self, sid: str, environ: dict[str, Any], auth_data: Any = None) -> bool:
        if self._closer.draining:
            self._metrics.refusals.labels("server_full").inc()
            raise Refusal("server_full", "gateway is shutting down; connect to another one")
        eio_sid = self._sio.manager.eio_sid_from_sid(sid, "/")
        client = self._handshake.admit(sid, eio_sid, environ, auth_data)
        plan = self._plan(client, auth_data)
        conn = client.conn
        self._clients.add(client)
        self._registry.add(conn)
        self._subscriptions.hold(conn, plan)  # before the joins: no live event slips ahead
        for room in policy.automatic_rooms(client.claims):
            self._registry.join(conn, room.name)
        self._subscriptions.join(conn, plan)
        self._metrics.connects.inc()
        self._metrics.connections.set(len(self._registry))
        self._sessions.touch(sid)
        await self._feeds.acquire(conn.org)
        client.refused = plan.refused or None
        if plan.since or plan.fleet:
            client.recovered = await self._subscriptions.resume(conn, plan)
        asked = state.kinds_asked(auth_data.get("state") if isinstance(auth_data, dict) else None)
        kinds = asked | subscriptions.state_after_gaps(client.recovered or {}, conn.user)
        if kinds:
            client.state = await self._subscriptions.send_state(conn, kinds)
        return self._registry.get(sid) is conn  # False if it left while we waited

    def _plan(self, client: Client, auth_data: Any) -> Resume:
        since = auth_data.get("since") if isinstance(auth_data, dict) else None
        try:
            return self._subscriptions.plan_resume(client, since)
        except Refused as refused:
            self._metrics.refusals.labels(refused.code).inc()
            raise Refusal(refused.code, refused.message) from None

    def _opened(self, sid: str) -> None:
        client = self._clients.get(sid)
        if client is not None:
            self._outbox.open(client.conn, packets.encode_event("session", self.session(client)))

    def session(self, client: Client) -> dict[str, Any]:
        """The ``session`` event: who the client is, where it is, until when."""
        conn = client.conn
        info = {
            "sid": conn.sid,
            "user": conn.user,
            "org": conn.org,
            "roles": list(client.claims.roles),
            "rooms": sorted(rooms.client_name(name, conn.org) for name in conn.rooms),
            "gateway": self._settings.gateway_id,
            "expires_at": client.claims.exp,
            "receipts": list(self._settings.receipt_events),
        }
        if client.recovered is not None:
            info["recovered"] = client.recovered
        if client.refused:
            info["refused"] = client.refused
        if client.state is not None:
            info["state"] = client.state
        return info

    async def on_disconnect(self, sid: str, reason: Any = None) -> None:
        self._clients.remove(sid)
        conn = self._registry.remove(sid)
        if conn is None:
            return
        self._outbox.forget(conn)
        self._transport.release(conn)
        self._sessions.drop(sid)
        label = conn.close_reason or str(reason or "unknown").replace(" ", "_")
        self._metrics.disconnects.labels(label).inc()
        self._metrics.connections.set(len(self._registry))
        await self._feeds.release(conn.org)

    def on_violation(self, eio_sid: str, code: str) -> None:
        """A client broke a transport guard (transport/guard.py): cut it off, saying why."""
        sid = self._sio.manager.sid_from_eio_sid(eio_sid, "/")
        client = self._clients.get(sid) if sid is not None else None
        if client is not None:
            self._closer.cut_off(client.conn, code)
        else:  # not (yet) a Socket.IO connection: nothing to tell, just close
            self._sio.eio.spawn(self._sio.eio.abort(eio_sid))

    # --- requests -------------------------------------------------------------------

    async def on_subscribe(self, sid: str, data: Any = None) -> Ack:
        client = self._clients.get(sid)
        if client is None:
            return _not_connected()
        return await self._subscriptions.subscribe(client, data)

    async def on_unsubscribe(self, sid: str, data: Any = None) -> Ack:
        client = self._clients.get(sid)
        if client is None:
            return _not_connected()
        return self._subscriptions.unsubscribe(client, data)

    async def on_receipt(self, sid: str, data: Any = None) -> Ack:
        """A client's receipt for a receipted event it was sent (edge/receipts.py)."""
        client = self._clients.get(sid)
        if client is None:
            return _not_connected()
        return await self._desk.answer(client, data)

    async def on_refresh(self, sid: str, data: Any = None) -> Ack:
        """Swap in a new token of the same user and org; rooms it no longer allows are left."""
        client = self._clients.get(sid)
        if client is None:
            return _not_connected()
        try:
            claims = self._handshake.verify(data.get("token") if isinstance(data, dict) else None)
        except Refusal as refusal:
            return _error(refusal.code, str(refusal))
        conn = client.conn
        if (claims.user, claims.org) != (conn.user, conn.org):
            return _error("forbidden", "a refresh token must be for the same user and org")
        if self._handshake.is_revoked(claims):
            return _error("revoked", "this token was revoked")
        if not self._policy.known_roles(claims):
            return _error("forbidden", "no role of this token may connect")
        client.claims = claims
        client.deadline = self._handshake.deadline(claims)
        left = self._leave_refused(client, claims)
        self._sessions.touch(sid)
        return {"ok": True, "expires_at": claims.exp, "left": left}

    def _leave_refused(self, client: Client, claims: auth.Claims) -> list[str]:
        conn, left = client.conn, []
        for name in sorted(conn.rooms):
            room = rooms.parse_room(name)
            if not self._policy.allows(claims, room):
                self._registry.leave(conn, name)
                left.append(room.client_name)
        return left


def _error(code: str, message: str) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message}}


def _not_connected() -> Ack:
    return _error("not_connected", "connection is closing")
