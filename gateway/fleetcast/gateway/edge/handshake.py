"""The checks a new connection must pass, cheapest first, and how a refusal is told.

A refused handshake raises :class:`Refusal`; python-socketio turns it into the
client's ``connect_error``, whose data carries ``code`` and ``message``.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

import socketio

from fleetcast.gateway.edge import admission, auth, policy
from fleetcast.gateway.edge.clients import Client
from fleetcast.gateway.edge.limits import TokenBucket
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.settings import Settings


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


class Handshake:
    """Admits a connection or raises :class:`Refusal` (and counts why)."""

    def __init__(
        self,
        settings: Settings,
        verifier: auth.Verifier,
        role_policy: policy.Policy,
        registry: Registry,
        metrics: Metrics,
        *,
        revoked: Callable[[auth.Claims], bool] = lambda claims: False,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._revoked = revoked
        self._settings = settings
        self._verifier = verifier
        self._policy = role_policy
        self._registry = registry
        self._metrics = metrics
        self._clock = clock
        self._bucket = admission.Admission(
            settings.handshake_rate, settings.handshake_burst, clock()
        )

    def admit(
        self, sid: str, eio_sid: str, environ: Mapping[str, Any], auth_data: object
    ) -> Client:
        try:
            return self._admit(sid, eio_sid, environ, auth_data)
        except Refusal as refusal:
            self._metrics.refusals.labels(refusal.code).inc()
            raise

    def _admit(
        self, sid: str, eio_sid: str, environ: Mapping[str, Any], auth_data: object
    ) -> Client:
        s, now = self._settings, self._clock()
        retry = self._bucket.take(now)
        if retry > 0:
            raise Refusal("rate_limited", "too many connections at once; retry later", retry)
        if len(self._registry) >= s.max_connections:
            raise Refusal("server_full", f"gateway full ({s.max_connections} connections)")
        claims = self.verify(auth.extract_token(auth_data, environ))
        if self._revoked(claims):
            self._metrics.auth_failures.labels("revoked").inc()
            raise Refusal("revoked", "this token was revoked")
        if not self._policy.known_roles(claims):
            raise Refusal("forbidden", "no role of this token may connect")
        if self._registry.user_connections(claims.org, claims.user) >= s.max_connections_per_user:
            raise Refusal(
                "server_full", f"at most {s.max_connections_per_user} connections per user"
            )
        conn = Connection(sid, eio_sid, claims.org, claims.user, connected_at=time.time())
        return Client(
            conn,
            claims,
            deadline=self.deadline(claims),
            requests=TokenBucket(s.subscribe_rate, s.subscribe_burst, now),
            session_deadline=conn.connected_at + s.max_session_age_s,
        )

    def deadline(self, claims: auth.Claims) -> float:
        """When a connection on ``claims`` must go: its token's exp, plus the leeway.

        A refresh moves it; the session's own deadline (its maximum age) it never moves.
        """
        return claims.exp + self._settings.jwt_leeway_s

    def is_revoked(self, claims: auth.Claims) -> bool:
        return self._revoked(claims)

    def verify(self, token: object) -> auth.Claims:
        """Claims of a token, or :class:`Refusal` with the code the client is told."""
        try:
            return self._verifier.verify(token)
        except auth.AuthError as exc:
            self._metrics.auth_failures.labels(exc.code).inc()
            raise Refusal(exc.code, exc.message) from None
