"""/health, /ready and /metrics of one consumer process (aiohttp).

/health: the loop is turning (a stuck process gets restarted).
/ready: joined its group, Redis answers a PING now, events flow (no
partition stalled) and the dead-letter topic takes records; false while
shutting down, so a rollout never counts a draining process as ready. The
body names what is wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Final

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from fleetcast.consumer.conditions import State
from fleetcast.consumer.metrics import Metrics

READY_PING_TIMEOUT_S: Final = 1.0

STATE: Final = web.AppKey("state", State)
METRICS: Final = web.AppKey("metrics", Metrics)
PING: Final = web.AppKey[Callable[[], Awaitable[bool]]]("ping")


async def health(request: web.Request) -> web.Response:
    ok = request.app[STATE].healthy()
    return web.json_response({"ok": ok}, status=200 if ok else 503)


async def ready(request: web.Request) -> web.Response:
    state = request.app[STATE]
    checks = {**state.checks(), "redis": False}
    problems = state.problems()  # read with the checks: the ping below takes time
    try:
        checks["redis"] = await asyncio.wait_for(request.app[PING](), READY_PING_TIMEOUT_S)
    except Exception:  # any failure to answer means not ready; the reason is in the logs
        checks["redis"] = False
    ok = all(checks.values())
    body = {"ok": ok, **checks, **problems}
    return web.json_response(body, status=200 if ok else 503)


async def metrics(request: web.Request) -> web.Response:
    body = request.app[METRICS].render()
    return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})


def make_app(
    state: State, metrics_: Metrics, ping: Callable[[], Awaitable[bool]]
) -> web.Application:
    app = web.Application()
    app[STATE] = state
    app[METRICS] = metrics_
    app[PING] = ping
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    app.router.add_get("/metrics", metrics)
    return app


async def start(app: web.Application, host: str, port: int) -> web.AppRunner:
    """Serve ``app``; the caller owns the runner and calls ``cleanup()``."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner
