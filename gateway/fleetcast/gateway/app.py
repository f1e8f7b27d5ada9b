"""The composition root: settings in, a ready aiohttp application out.

Everything is built here, bottom layer first, and handed its collaborators
explicitly: transport, then rooms, then the Redis side and the edge. Every
task of the process has one owner, a :class:`~fleetcast.common.tasks.Supervisor`:
the long-running services (listener, canary, outbox pump, fleet batcher,
session writer, expiry sweep, loop-lag sampler, heartbeat) start when the app
starts and are cancelled and awaited, with every short-lived task, when it
shuts down; then the Redis clients are closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from fleetcast.common import redisurl, tracing
from fleetcast.common.tasks import Supervisor
from fleetcast.gateway.edge import (
    admin,
    admission,
    auth,
    console,
    http,
    policy,
    receipts,
    revocation,
    subscriptions,
)
from fleetcast.gateway.edge.clients import Clients
from fleetcast.gateway.edge.closing import Closer, DrainReport
from fleetcast.gateway.edge.handshake import Handshake
from fleetcast.gateway.edge.server import GatewayManager, Server
from fleetcast.gateway.kafka.producer import ControlProducer
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.redis import sessions
from fleetcast.gateway.redis.canary import Canary, Echoes
from fleetcast.gateway.redis.clients import cluster_client, node_kwargs, redis_client
from fleetcast.gateway.redis.control import RedisControlReader
from fleetcast.gateway.redis.listener import Listener
from fleetcast.gateway.redis.shards import ShardOptions, Shards
from fleetcast.gateway.redis.snapshots import RedisSnapshotSource
from fleetcast.gateway.redis.state import RedisStateSource
from fleetcast.gateway.redis.streams import RedisStreamReader
from fleetcast.gateway.rooms import fleet, recovery, replay, snapshots, state
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.feed import Feed
from fleetcast.gateway.rooms.outbox import Outbox
from fleetcast.gateway.rooms.receipting import ReceiptingTransport
from fleetcast.gateway.rooms.registry import Registry
from fleetcast.gateway.rooms.tracing import DeliveryTracer
from fleetcast.gateway.settings import Settings
from fleetcast.gateway.transport import engine, guard, sendbuffer
from fleetcast.gateway.transport.writer import EngineIOTransport
from fleetcast.protocol import keys


@dataclass(frozen=True, slots=True)
class Gateway:
    """What :func:`create_app` assembled: for ``__main__`` (drain) and for tests to look into."""

    settings: Settings
    registry: Registry
    clients: Clients
    delivery: Delivery
    listener: Listener | Shards
    canary: Canary | Shards
    closer: Closer
    server: Server
    status: http.GatewayStatus
    supervisor: Supervisor

    @property
    def ready(self) -> bool:
        return self.status.ready

    async def drain(self, seconds: float) -> DrainReport:
        """SIGTERM: refuse new clients, send the connected ones elsewhere, spread over time."""
        return await self.closer.drain(seconds, self.supervisor.settle)


GATEWAY = web.AppKey("gateway", Gateway)
#: The commands client: ``redis.asyncio.Redis``, or ``RedisCluster`` on a cluster.
REDIS = web.AppKey("redis", object)


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
    metrics, registry, clients = Metrics(), Registry(), Clients()
    supervisor = Supervisor()
    target = redisurl.parse(settings.redis_url)
    commands, pubsub = _redis_clients(settings, target)
    role_policy = policy.Policy.from_grants(settings.role_policy)

    # transport
    sio = _socketio_server(settings)
    sio.attach(app, socketio_path=settings.ws_path)
    sio.eio.use_tasks(supervisor.spawn)
    transport = EngineIOTransport(sio.eio)

    # rooms
    closer = Closer(
        transport,
        sio.disconnect,
        supervisor.spawn,
        clients,
        metrics,
        drain_rate=settings.drain_rate,
        drain_jitter_s=settings.drain_jitter_s,
    )
    producer = _control_producer(settings)
    receipting = _receipting(settings, transport, producer)
    outbox = Outbox(
        receipting or transport,
        metrics,
        max_buffered=settings.max_buffered_messages,
        cut_off=closer.cut_off,
    )
    fleet_metrics = fleet.FleetMetrics(metrics.registry)
    batcher = fleet.FleetBatcher(
        registry, outbox, metrics, fleet_metrics, interval_s=settings.fleet_batch_ms / 1000
    )
    fleet_room = fleet.FleetRoom(
        batcher,
        snapshots.SnapshotReader(
            RedisSnapshotSource(commands),
            supervisor.spawn,
            ttl_s=settings.fleet_asset_ttl_s,
            max_assets=settings.fleet_snapshot_max,
        ),
        outbox,
        fleet_metrics,
        supervisor.spawn,
    )
    delivery = Delivery(registry, outbox, metrics, max_held=replay.MAX_HELD, fleet=batcher)
    streams = RedisStreamReader(commands)
    gaps = recovery.GapRecovery(
        registry, delivery, streams, outbox, metrics, spawn=supervisor.spawn, fleet=fleet_room
    )
    watch = recovery.GapWatch(
        gaps, streams, metrics, spawn=supervisor.spawn, interval_s=settings.position_check_s
    )

    # redis
    revocations = revocation.Revocations(
        clients,
        registry,
        closer,
        outbox,
        RedisControlReader(commands),
        metrics,
        spawn=supervisor.spawn,
    )
    session_store = sessions.SessionStore(commands, registry, settings.gateway_id)
    traces = tracing.setup(settings, "fleetcast-gateway", settings.gateway_id)
    tracer = DeliveryTracer(traces, settings.gateway_id) if traces is not None else None
    hooks: dict[str, Any] = {
        "batch": transport.corked,
        "on_connected": [
            lambda _: session_store.restore(),
            watch.connected,
            revocations.connected,
        ],
        "on_subscribed": [watch.subscribed],
        "on_unsubscribed": [watch.unsubscribed],
    }
    sink = Feed(delivery, watch, metrics, tracer).on_message
    listener: Listener | Shards
    canary: Canary | Shards
    if target.cluster:  # one sharded pub/sub connection per shard (redis/shards.py)
        listener = canary = Shards(
            commands,
            metrics,
            _shard_options(settings, target),
            sink=sink,
            control=revocations.on_message,
            recover=gaps.request,
            on_control_moved=lambda: revocations.connected(0),
            **hooks,
        )
    else:
        echoes = Echoes()
        canary_channel = keys.canary_channel(settings.gateway_id)
        listener = Listener(
            pubsub,
            metrics,
            sink=sink,
            channels={
                canary_channel: echoes.back,
                keys.control_channel(): revocations.on_message,
            },
            backoff_max_s=settings.redis_backoff_max_s,
            **hooks,
        )
        canary = Canary(
            commands,
            listener,
            echoes,
            metrics,
            channel=canary_channel,
            interval_s=settings.canary_interval_s,
            timeout_s=settings.canary_timeout_s,
        )

    # edge
    replays = replay.Replays(streams, outbox, metrics)
    org_state = state.StateService(
        RedisStateSource(commands),
        replays,
        metrics,
        spawn=supervisor.spawn,
        max_items=settings.state_snapshot_max,
    )
    requests = subscriptions.Subscriptions(
        registry,
        role_policy,
        replays,
        metrics,
        max_rooms=settings.max_rooms_per_connection,
        on_change=session_store.touch,
        fleet=fleet_room,
        state=org_state,
    )
    server = Server(
        sio,
        settings=settings,
        handshake=Handshake(
            settings,
            _verifier(settings),
            role_policy,
            registry,
            metrics,
            revoked=revocations.refuses,
        ),
        role_policy=role_policy,
        clients=clients,
        registry=registry,
        outbox=outbox,
        subscriptions=requests,
        closer=closer,
        feeds=listener,
        sessions=session_store,
        transport=transport,
        metrics=metrics,
        desk=receipts.Desk(
            producer if receipting else None,
            topic=settings.kafka_receipts_topic,
            gateway_id=settings.gateway_id,
            rate=settings.receipt_rate,
            burst=settings.receipt_burst,
        ),
    )
    sio.eio.use_guards(
        guard.Guards(
            guard.Limits(
                request_rate=settings.request_rate,
                request_burst=settings.request_burst,
                max_in_flight=settings.max_requests_in_flight,
                max_protocol_errors=settings.max_protocol_errors,
                max_unsent_bytes=settings.max_unsent_bytes,
            ),
            server.on_violation,
            count=lambda code: metrics.violations.labels(code).inc(),
            count_error=metrics.protocol_errors.inc,
        )
    )
    status = http.GatewayStatus(
        settings.gateway_id, registry, delivery, listener, canary, closer, revocations
    )
    app[GATEWAY] = Gateway(
        settings, registry, clients, delivery, listener, canary, closer, server, status, supervisor
    )
    app[REDIS] = commands
    cluster_stats = functools.partial(sessions.cluster_stats, commands)
    app.add_routes(http.Endpoints(status, metrics, cluster_stats).routes())
    tiles = console.MapConfig(
        settings.map_tile_url, settings.map_tile_attribution, settings.map_max_zoom
    )
    console.add_routes(app, settings.console_enabled, tiles)
    admin_token = settings.admin_token.get_secret_value() if settings.admin_token else None
    app.add_routes(admin.Admin(admin_token, producer).routes())
    lag = admission.LoopLag()
    refused = metrics.refusals.labels("overloaded").inc
    app.middlewares.append(
        admission.overload_guard(lag, settings.ws_path, settings.overload_lag_s, refused)
    )
    sendbuffer.install(app, settings.send_buffer_bytes)

    services = {
        "listener": listener.run,
        **({"canary": canary.run} if isinstance(canary, Canary) else {}),
        "outbox": outbox.run,
        "fleet": batcher.run,
        "loop-lag": lag.run,
        "sessions": session_store.run,
        "expiry": closer.run_expiry,
        "positioning": watch.run,
        "heartbeat": sio.eio.heartbeat.run,
    }
    flusher = None
    if receipting is not None and producer is not None:
        flusher = receipts.SentFlusher(
            receipting,
            producer,
            topic=settings.kafka_receipts_topic,
            gateway_id=settings.gateway_id,
            interval_s=settings.receipt_flush_ms / 1000,
        )
        services["receipts"] = flusher.run
    app.cleanup_ctx.append(
        _lifetime(
            supervisor, services, sio, session_store, producer, commands, pubsub, flusher, traces
        )
    )
    return app


def _redis_clients(settings: Settings, target: redisurl.RedisTarget) -> tuple[Any, Any]:
    """The commands client and the pub/sub client (None on a cluster: shards.py has its own)."""
    timeout, name = settings.redis_timeout_s, settings.gateway_id
    if target.cluster:
        return cluster_client(target, gateway_id=name, timeout_s=timeout), None
    commands, pubsub = (
        redis_client(settings.redis_url, gateway_id=name, timeout_s=timeout, for_pubsub=pubsub)
        for pubsub in (False, True)
    )
    return commands, pubsub


def _shard_options(settings: Settings, target: redisurl.RedisTarget) -> ShardOptions:
    return ShardOptions(
        gateway_id=settings.gateway_id,
        backoff_max_s=settings.redis_backoff_max_s,
        canary_interval_s=settings.canary_interval_s,
        canary_timeout_s=settings.canary_timeout_s,
        timeout_s=settings.redis_timeout_s,
        check_s=settings.redis_topology_check_s,
        node_kwargs=node_kwargs(target),
    )


def _control_producer(settings: Settings) -> ControlProducer | None:
    if not settings.kafka_bootstrap_servers:
        return None
    options = settings.kafka_options(
        settings.kafka_bootstrap_servers, f"fleetcast-gateway-{settings.gateway_id}"
    )
    return ControlProducer(options, settings.kafka_control_topic)


def _receipting(
    settings: Settings, transport: EngineIOTransport, producer: ControlProducer | None
) -> ReceiptingTransport | None:
    """The transport seen through receipts, when there are receipted types and a Kafka."""
    if producer is None or not settings.receipt_events:
        return None
    return ReceiptingTransport(transport, frozenset(settings.receipt_events))


def _verifier(settings: Settings) -> auth.Verifier:
    return auth.Verifier.create(
        settings.jwt_algorithms,
        secret=settings.jwt_secret,
        public_key_pem=settings.jwt_public_key,
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
        leeway_s=settings.jwt_leeway_s,
        max_lifetime_s=settings.max_token_lifetime_s,
    )


def _lifetime(
    supervisor: Supervisor,
    services: dict[str, Any],
    sio: Any,
    session_store: sessions.SessionStore,
    producer: ControlProducer | None,
    commands: Any,
    pubsub: Any,
    flusher: receipts.SentFlusher | None,
    traces: tracing.Tracing | None = None,
) -> Any:
    """The aiohttp cleanup context: services run while the app does, then everything stops."""

    async def context(_: web.Application) -> AsyncIterator[None]:
        supervisor.start(services)
        try:
            yield
        finally:
            await supervisor.stop()
            sio.eio.close_websockets()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await session_store.close()
            if flusher is not None:  # the last sent facts, while Kafka is still ours
                with contextlib.suppress(Exception):
                    async with asyncio.timeout(2.0):
                        await flusher.flush()
            if producer is not None:
                await producer.close()
            await commands.aclose()
            if pubsub is not None:
                await pubsub.aclose()
            if traces is not None:  # exports the last spans (the SDK's thread)
                await asyncio.to_thread(traces.shutdown)

    return context
