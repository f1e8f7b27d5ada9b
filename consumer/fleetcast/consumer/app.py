"""Composition root of one consumer process: build everything, run, stop cleanly.

Start-up retries Kafka until it answers (a consumer may start before its
brokers). SIGTERM/SIGINT set ``stopping``: the loop finishes the batch in
hand, commits, and the consumer leaves its group so its partitions move at
once instead of after a session timeout. Every one of those steps is
bounded, and the signal arms a hard deadline (shutdown.py): with Kafka and
Redis gone or hung, the process still exits within its grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import signal
import socket
from collections.abc import Awaitable, Callable

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from redis.asyncio import Redis

from fleetcast.common import redisurl, tracing
from fleetcast.consumer import (
    access,
    conditions,
    control,
    deadletter,
    encoding,
    escalating,
    http,
    pipeline,
    publishing,
    sending,
    shutdown,
)
from fleetcast.consumer import tracing as consumer_tracing
from fleetcast.consumer.metrics import Metrics
from fleetcast.consumer.settings import Settings
from fleetcast.consumer.state import Rules as StateRules

log = structlog.stdlib.get_logger(__name__)


def options(settings: Settings) -> pipeline.Options:
    return pipeline.Options(
        table=settings.routing_table(),
        max_event_bytes=settings.max_event_bytes,
        batch_max=settings.batch_max,
        poll_timeout_ms=settings.poll_timeout_ms,
        backoff_max_s=settings.retry_backoff_max_s,
        shutdown_timeout_s=settings.shutdown_timeout_s,
        commit_interval_s=settings.commit_interval_ms / 1000,
        dlq_policy=settings.kafka_dlq_failure_policy,
        dlq_recheck_s=settings.kafka_dlq_recheck_s,
        dlq_max_record_bytes=settings.kafka_dlq_max_record_bytes,
        stall_after_s=settings.stall_after_s,
        stop_step_timeout_s=settings.shutdown_step_timeout_s,
        control_topic=settings.kafka_control_topic or None,
        access_rules=access.rules_from(settings.access_rules),
        state_rules=StateRules(
            closed_statuses=frozenset(settings.state_closed_statuses),
            alert_end_types=frozenset(settings.state_alert_end_types),
        ),
    )


def limits(settings: Settings) -> encoding.Limits:
    return encoding.Limits(
        history_maxlen=settings.history_maxlen,
        history_ttl_s=settings.history_ttl_s,
        fence_ttl_s=settings.fence_ttl_s,
        fleet_asset_ttl_s=settings.fleet_asset_ttl_s,
        fleet_max_assets=settings.fleet_max_assets,
        state_ttl_s=settings.state_ttl_s,
        inbox_ttl_s=settings.inbox_ttl_s,
    )


def make_consumer(settings: Settings) -> AIOKafkaConsumer:
    return AIOKafkaConsumer(
        **settings.kafka_client_options(),
        group_id=settings.kafka_group_id,
        enable_auto_commit=False,
        auto_offset_reset=settings.kafka_auto_offset_reset,
        fetch_min_bytes=settings.kafka_fetch_min_bytes,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )


def make_producer(settings: Settings) -> AIOKafkaProducer:
    """The dead-letter producer: it takes any copy deadletter.copy_of makes, within a bound."""
    return AIOKafkaProducer(
        **settings.kafka_client_options(),
        acks="all",
        max_request_size=settings.kafka_dlq_max_record_bytes,
        request_timeout_ms=settings.kafka_dlq_timeout_ms,
    )


async def start_with_retry(
    name: str, start: Callable[[], Awaitable[None]], stopping: asyncio.Event, cap: float
) -> bool:
    """Call ``start`` until it succeeds; False if shutdown came first."""
    attempt = 0
    while not stopping.is_set():
        try:
            started, _ = await shutdown.until_stopped(start(), stopping)
            return started
        except pipeline.RETRYABLE as exc:
            log.warning("cannot reach kafka yet", client=name, attempt=attempt, error=repr(exc))
        await pipeline.pause(stopping, pipeline.backoff(attempt, cap))
        attempt += 1
    return False


async def kafka_cluster_id(settings: Settings) -> str:
    """The Kafka cluster's id: it names the publish fences of this cluster's offsets."""
    admin = AIOKafkaAdminClient(**settings.kafka_client_options())
    await admin.start()
    try:
        return str((await admin.describe_cluster())["cluster_id"])
    finally:
        await admin.close()


async def run(
    settings: Settings,
    stopping: asyncio.Event | None = None,
    deadline: shutdown.HardDeadline | None = None,
) -> None:
    """Run one consumer until ``stopping`` is set (by default on SIGTERM/SIGINT).

    A signal also arms ``deadline`` (``__main__`` owns it); the stop steps
    share what it leaves.
    """
    deadline = deadline or shutdown.HardDeadline(settings.shutdown_deadline_s)
    stopping = stopping or _stop_on_signals(deadline)
    metrics = Metrics()
    state = conditions.State()
    # No socket_timeout: redis-py would then send every command from a task of its
    # own (asyncio.wait_for), a loop turn late; the publisher times its calls itself.
    sender = redis_sender(settings)
    redis = sender.client
    consumer = make_consumer(settings)
    producer = make_producer(settings)
    runner = await http.start(
        http.make_app(state, metrics, redis.ping),  # /ready times the ping itself
        settings.consumer_host,
        settings.consumer_port,
    )
    log.info("consumer http listening", host=settings.consumer_host, port=settings.consumer_port)
    traces = tracing.setup(settings, "fleetcast-consumer", socket.gethostname())
    try:
        await _consume(
            settings, consumer, producer, sender, metrics, state, stopping, deadline, traces
        )
    finally:
        state.stopping = True
        for name, close in (
            ("leave the group", consumer.stop),  # commits nothing itself (auto-commit off)
            ("flush dead letters", producer.stop),
            ("close redis", redis.aclose),
            ("close http", runner.cleanup),
        ):
            await shutdown.step(name, close(), deadline.budget(settings.shutdown_step_timeout_s))
        if traces is not None:  # exports the last spans from the SDK's thread
            await shutdown.step(
                "flush traces",
                asyncio.to_thread(traces.shutdown),
                deadline.budget(settings.shutdown_step_timeout_s),
            )
        log.info("consumer stopped")


def redis_sender(settings: Settings) -> sending.Sender:
    """One Redis or a cluster (FLEETCAST_REDIS_URL), and how the publisher reaches it."""
    target = redisurl.parse(settings.redis_url)
    timeout = settings.redis_timeout_s
    if target.cluster:
        return sending.ClusterSender(
            redisurl.cluster_client(target, socket_connect_timeout=timeout), timeout
        )
    return sending.SingleSender(
        Redis.from_url(settings.redis_url, socket_connect_timeout=timeout), timeout
    )


async def _consume(
    settings: Settings,
    consumer: AIOKafkaConsumer,
    producer: AIOKafkaProducer,
    sender: sending.Sender,
    metrics: Metrics,
    state: conditions.State,
    stopping: asyncio.Event,
    deadline: shutdown.HardDeadline,
    traces: tracing.Tracing | None = None,
) -> None:
    """Start the Kafka clients (retrying), then run the pipeline until ``stopping``."""
    cap = settings.retry_backoff_max_s
    cluster: list[str] = []

    async def learn_cluster_id() -> None:
        cluster.append(await kafka_cluster_id(settings))

    if not (
        await start_with_retry("admin", learn_cluster_id, stopping, cap)
        and await start_with_retry("producer", producer.start, stopping, cap)
    ):
        return
    rules = settings.parsed_escalation_rules()
    escalations = None
    if rules:
        escalations = escalating.Escalations(
            sender.client,
            producer,
            rules,
            topic=settings.kafka_escalation_topic,
            tick_s=settings.escalation_tick_ms / 1000,
        )
    loop = pipeline.Pipeline(
        consumer,
        publishing.RedisPublisher(sender, limits(settings), cluster[0], settings.redis_timeout_s),
        deadletter.KafkaDeadLetters(producer, settings.kafka_dlq_topic),
        metrics,
        options(settings),
        state,
        control.ControlWriter(sender, settings.redis_timeout_s),
        escalations,
        consumer_tracing.BatchTracer(traces) if traces is not None else None,
    )
    # Subscribing before start joins the group at once (after start: ~5 s later).
    consumer.subscribe(settings.subscribed_topics(), listener=pipeline.Listener(loop))
    if await start_with_retry("consumer", consumer.start, stopping, cap):
        # Modules and clients live as long as the process: out of the collector's
        # sight, a full collection scans only what the loop made (measured at
        # 1,000 events/s: a 56 ms pause without this, right on the event path).
        gc.freeze()
        log.info(
            "consuming",
            topics=settings.subscribed_topics(),
            group=settings.kafka_group_id,
            cluster=cluster[0],
        )
        ticking = (
            asyncio.create_task(escalations.run(), name="escalations") if escalations else None
        )
        try:
            await _run_pipeline(loop, stopping, settings, deadline)
        finally:
            if ticking is not None:
                ticking.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticking


async def _run_pipeline(
    loop: pipeline.Pipeline,
    stopping: asyncio.Event,
    settings: Settings,
    deadline: shutdown.HardDeadline,
) -> None:
    """Run the loop; once stopping, it may finish the batch in hand and commit, within bounds."""
    task = asyncio.create_task(loop.run(stopping), name="pipeline")
    stop = asyncio.create_task(stopping.wait(), name="stop-signal")
    try:
        await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        stop.cancel()
    if task.done():
        task.result()  # it ended on its own: a bug, raised loudly
        return
    finishing = settings.shutdown_timeout_s + settings.shutdown_step_timeout_s
    await shutdown.step("finish the batch in hand", task, deadline.budget(finishing))


def _stop_on_signals(deadline: shutdown.HardDeadline) -> asyncio.Event:
    stopping = asyncio.Event()
    running = asyncio.get_running_loop()

    def stop(sig: signal.Signals) -> None:
        if not stopping.is_set():
            log.info("stopping", signal=sig.name, deadline_s=deadline.seconds)
        stopping.set()
        deadline.arm()

    for sig in (signal.SIGTERM, signal.SIGINT):
        running.add_signal_handler(sig, stop, sig)
    return stopping
