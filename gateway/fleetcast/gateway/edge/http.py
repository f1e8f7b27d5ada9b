"""HTTP endpoints beside Socket.IO: /health, /ready, /stats, /metrics.

/health is liveness: the process answers (never depends on Redis, so a Redis
outage does not get every pod restarted). /ready is readiness: not draining,
and the Redis path proven by a recent canary.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, Final, Protocol

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.registry import Registry

log = structlog.stdlib.get_logger(__name__)

#: /stats waits at most this long for the cluster-wide figures from Redis.
CLUSTER_STATS_TIMEOUT_S: Final = 1.0


class Status(Protocol):
    @property
    def ready(self) -> bool: ...

    def stats(self) -> dict[str, Any]: ...


class Subscribed(Protocol):
    """The org channels listened to (redis/listener.py)."""

    @property
    def orgs(self) -> list[str]: ...


class Proof(Protocol):
    """The pub/sub path proven recently (redis/canary.py)."""

    @property
    def healthy(self) -> bool: ...


class Loaded(Protocol):
    """The revocation list read once (edge/revocation.py): before that, none is refused."""

    @property
    def loaded(self) -> bool: ...


class Draining(Protocol):
    @property
    def draining(self) -> bool: ...


class Delivered(Protocol):
    @property
    def delivered(self) -> int: ...


class GatewayStatus:
    """Ready when not draining and the pub/sub path is proven; the figures /stats shows."""

    def __init__(
        self,
        gateway_id: str,
        registry: Registry,
        delivery: Delivered,
        listener: Subscribed,
        canary: Proof,
        closer: Draining,
        revocations: Loaded,
    ) -> None:
        self._gateway_id = gateway_id
        self._registry = registry
        self._delivery = delivery
        self._listener = listener
        self._canary = canary
        self._closer = closer
        self._revocations = revocations
        self._started = time.monotonic()

    @property
    def ready(self) -> bool:
        return not self._closer.draining and self._canary.healthy and self._revocations.loaded

    def stats(self) -> dict[str, Any]:
        return {
            "gateway": self._gateway_id,
            "uptime_s": round(time.monotonic() - self._started, 3),
            "ready": self.ready,
            "draining": self._closer.draining,
            "connections": len(self._registry),
            "rooms": len(self._registry.rooms),
            "orgs": self._registry.per_org(),
            "subscribed_orgs": self._listener.orgs,
            "messages_delivered": self._delivery.delivered,
        }


#: Connections, rooms and orgs across every live gateway (redis/sessions.py).
ClusterStats = Callable[[], Awaitable[dict[str, Any]]]


class Endpoints:
    def __init__(self, status: Status, metrics: Metrics, cluster_stats: ClusterStats) -> None:
        self._status = status
        self._metrics = metrics
        self._cluster_stats = cluster_stats

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/health", self.health),
            web.get("/ready", self.ready),
            web.get("/stats", self.stats),
            web.get("/metrics", self.metrics),
        ]

    async def health(self, _: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(self, _: web.Request) -> web.Response:
        ready = self._status.ready
        self._metrics.ready.set(1 if ready else 0)
        return web.json_response({"ready": ready}, status=200 if ready else 503)

    async def stats(self, _: web.Request) -> web.Response:
        body = self._status.stats()
        try:
            async with asyncio.timeout(CLUSTER_STATS_TIMEOUT_S):
                body["cluster"] = await self._cluster_stats()
        except Exception as exc:  # Redis away: local figures still answer
            log.debug("cluster stats unavailable", error=repr(exc))
            body["cluster"] = None
        return web.json_response(body)

    async def metrics(self, _: web.Request) -> web.Response:
        self._metrics.ready.set(1 if self._status.ready else 0)
        return web.Response(
            body=self._metrics.render(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )
