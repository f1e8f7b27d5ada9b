"""The composition root: settings in, a ready aiohttp application out.

Everything is built here and passed down. Every background task (pub/sub
listener, canary, outbox pump, fleet batcher, session writer, expiry sweep) is started by
:func:`_background`, an aiohttp cleanup context that cancels and awaits
them all when the app shuts down; so are the Redis clients closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Coroutine
from typing import Any

import redis.asyncio as aioredis
from aiohttp import web

from fleetcast.gateway import tasks
from fleetcast.gateway.edge import admission, auth, console, http, policy, subscriptions
from fleetcast.gateway.edge.server import Gateway, GatewayManager, Parts
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.redis import snapshots as redis_snapshots
from fleetcast.gateway.redis.clients import redis_client
from fleetcast.gateway.redis.fanout import Fanout
from fleetcast.gateway.redis.sessions import SessionStore
from fleetcast.gateway.redis.streams import RedisStreamReader
from fleetcast.gateway.rooms import fleet, snapshots
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.outbox import Outbox
from fleetcast.gateway.rooms.registry import Registry
from fleetcast.gateway.settings import Settings
from fleetcast.gateway.tasks import Tasks
from fleetcast.gateway.transport import engine, sendbuffer
from fleetcast.gateway.transport.writer import EngineIOTransport

GATEWAY = web.AppKey("gateway", Gateway)
REDIS = web.AppKey("redis", aioredis.Redis)


def _socketio_server(settings: Settings) -> Any:
    origins: Any = None  # same origin only
    if settings.cors_origins:
        origins = "*" if "*" in settings.cors_origins else list(settings.cors_origins)
    return engine.LeanSocketIO(
        async_mode="aiohttp",
        client_manager=GatewayManager(),
        cors_allowed_origins=origins,
        ping_interval=settings.ping_interval,
        ping_timeout=settings.ping_timeout,
        max_http_buffer_size=settings.max_client_message_bytes,
        transports=["polling", "websocket"],
        logger=logging.getLogger("socketio.server"),
        engineio_logger=logging.getLogger("engineio.server"),
    )


def create_app(settings: Settings) -> web.Application:
    """Build the gateway; nothing connects or runs until the app starts."""
    app = web.Application()
    metrics, registry, tasks = Metrics(), Registry(), Tasks()
    commands, pubsub = redis_client(settings), redis_client(settings, for_pubsub=True)
    sio = _socketio_server(settings)
    sio.attach(app, socketio_path=settings.ws_path)
    role_policy = policy.Policy.from_grants(settings.role_policy)

    gateway: Gateway | None = None

    def cut_off(conn: Any, reason: str) -> None:
        assert gateway is not None
        gateway.cut_off(conn, reason)

    transport = EngineIOTransport(sio.eio)
    outbox = Outbox(
        transport,
        metrics,
        max_buffered=settings.max_buffered_messages,
        cut_off=cut_off,
    )
    fleet_metrics = fleet.FleetMetrics(metrics.registry)
    batcher = fleet.FleetBatcher(
        registry, outbox, metrics, fleet_metrics, interval_s=settings.fleet_batch_ms / 1000
    )
    fleet_room = fleet.FleetRoom(
        batcher,
        snapshots.SnapshotReader(
            redis_snapshots.RedisSnapshotSource(commands),
            tasks.spawn,
            ttl_s=settings.fleet_asset_ttl_s,
            max_assets=settings.fleet_snapshot_max,
        ),
        outbox,
        fleet_metrics,
    )
    delivery = Delivery(registry, outbox, metrics, max_held=subscriptions.MAX_HELD, fleet=batcher)
    sessions = SessionStore(commands, registry, settings.gateway_id)
    fanout = Fanout(
        pubsub,
        commands,
        metrics,
        gateway_id=settings.gateway_id,
        sink=delivery.deliver,
        backoff_max_s=settings.redis_backoff_max_s,
        canary_interval_s=settings.canary_interval_s,
        canary_timeout_s=settings.canary_timeout_s,
        batch=transport.corked,
    )
    fanout.on_connected(sessions.restore)
    parts = Parts(
        settings=settings,
        metrics=metrics,
        registry=registry,
        delivery=delivery,
        outbox=outbox,
        fanout=fanout,
        sessions=sessions,
        verifier=_verifier(settings),
        policy=role_policy,
        subscriptions=subscriptions.Subscriptions(
            registry,
            role_policy,
            RedisStreamReader(commands),
            outbox,
            metrics,
            max_rooms=settings.max_rooms_per_connection,
            on_change=sessions.touch,
            fleet=fleet_room,
        ),
        tasks=tasks,
    )
    gateway = Gateway(sio, parts)
    app[GATEWAY] = gateway
    app[REDIS] = commands
    app.add_routes(http.Endpoints(gateway, metrics, commands).routes())
    console.add_routes(app, settings.console_enabled)
    lag = admission.LoopLag()
    refused = metrics.refusals.labels("overloaded").inc
    app.middlewares.append(
        admission.overload_guard(lag, settings.ws_path, settings.overload_lag_s, refused)
    )
    sendbuffer.install(app, settings.send_buffer_bytes)
    app.cleanup_ctx.append(_background(gateway, batcher, lag, commands, pubsub))
    return app


def _verifier(settings: Settings) -> auth.Verifier:
    return auth.Verifier.create(
        settings.jwt_algorithms,
        secret=settings.jwt_secret,
        public_key_pem=settings.jwt_public_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_s=settings.jwt_leeway_s,
    )


def _background(
    gateway: Gateway,
    batcher: fleet.FleetBatcher,
    lag: admission.LoopLag,
    commands: aioredis.Redis,
    pubsub: aioredis.Redis,
) -> Any:
    async def context(_: web.Application) -> AsyncIterator[None]:
        p = gateway.p
        jobs: dict[str, Coroutine[Any, Any, None]] = {
            "listener": p.fanout.run(),
            "canary": p.fanout.run_canary(),
            "outbox": p.outbox.run(),
            "fleet": batcher.run(),
            "loop-lag": lag.run(),
            "sessions": p.sessions.run(),
            "expiry": gateway.run_expiry(),
            "heartbeat": gateway.sio.eio.heartbeat.run(),
        }
        running = [asyncio.create_task(job, name=f"gateway:{name}") for name, job in jobs.items()]
        try:
            yield
        finally:
            await tasks.cancel_and_wait(running)
            await p.tasks.close()
            await gateway.sio.eio.close_websockets()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await p.sessions.close()
            await commands.aclose()
            await pubsub.aclose()

    return context
