"""The admin API: revoke a user, a session or a token, or take a room away, on every gateway.

    POST /admin/revoke    {"org", "user"?, "session"?, "jti"?, "reason"?, "until"?}
    POST /admin/withdraw  {"org", "room", "user"?, "reason"?}
    Authorization: Bearer <FLEETCAST_ADMIN_TOKEN>

The token is a secret of the operators' own tooling (at least 32 bytes),
separate from the JWT keys clients' tokens are signed with: a leaked client
signing key does not give the admin API away, and the API is off without it.
A request becomes a control message (protocol/control.py) written to the
Kafka control topic, the same way another service would write it; the
consumer records it and fans it out, and every gateway acts on it within
about a second. Answers: 202 once Kafka has it, 400 saying what is wrong,
401, 503 when there is no Kafka to write to.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any, Protocol

import orjson
import structlog
from aiohttp import web

from fleetcast.common.logs import Throttle
from fleetcast.protocol import control

log = structlog.stdlib.get_logger(__name__)


class ControlSink(Protocol):
    """Where control messages go (kafka/producer.py)."""

    async def send(self, message: control.Control) -> None: ...


class Admin:
    """The admin endpoints (none are routed without a token)."""

    def __init__(
        self,
        token: str | None,
        sink: ControlSink | None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._token = token.encode() if token else None
        self._sink = sink
        self._clock = clock
        self._throttle = Throttle()

    def routes(self) -> list[web.RouteDef]:
        if self._token is None:
            return []
        return [
            web.post("/admin/revoke", self.revoke),
            web.post("/admin/withdraw", self.withdraw),
        ]

    async def revoke(self, request: web.Request) -> web.Response:
        return await self._control(request, control.REVOKE)

    async def withdraw(self, request: web.Request) -> web.Response:
        return await self._control(request, control.WITHDRAW)

    async def _control(self, request: web.Request, action: str) -> web.Response:
        if not self._authorized(request):
            if self._throttle.allow("admin_unauthorized") is not None:
                log.warning("admin request refused", path=request.path, peer=request.remote)
            return _answer(401, {"ok": False, "error": "unauthorized"})
        try:
            body = await request.json(loads=orjson.loads)
            doc = {**(body if isinstance(body, dict) else {}), "v": control.VERSION}
            message = control.parse({**doc, "action": action}, now=self._clock())
        except (ValueError, control.ControlError) as exc:
            return _answer(400, {"ok": False, "error": str(exc)[:200]})
        if self._sink is None:
            return _answer(503, {"ok": False, "error": "no Kafka control topic configured"})
        try:
            await self._sink.send(message)
        except Exception as exc:  # Kafka away: nothing was done, the caller may retry
            log.warning("control message not sent", error=repr(exc))
            return _answer(503, {"ok": False, "error": "control topic unreachable; retry"})
        log.info("control message sent", action=action, org=message.org, user=message.user)
        return _answer(202, {"ok": True, "control": orjson.loads(control.encode(message))})

    def _authorized(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        given = header[7:].strip().encode() if header[:7].lower() == "bearer " else b""
        return self._token is not None and hmac.compare_digest(given, self._token)


def _answer(status: int, body: dict[str, Any]) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: orjson.dumps(o).decode())
