"""The consumer's loop: poll a batch, deliver it, then commit its offsets.

At-least-once, in this order and no other: offsets are committed only after
Redis accepted the batch's events and Kafka accepted its dead letters. While
Redis or Kafka is away the batch in hand is retried with backoff and nothing
new is polled, so nothing unpublished is ever committed; a redelivery after a
crash is dropped by the publish script (its per-partition offset fence).

Three stages overlap so that neither Python nor Redis waits for the other:
a poller decodes and routes the next batch while the current one is in
Redis, and a committer commits the latest delivered offsets in the
background, at most once per interval (coalescing, so a slow commit never
stalls delivery). Batches are
delivered strictly in poll order. A rebalance waits for the batch in flight,
commits, and makes every batch polled before it stale (aiokafka rewinds the
new assignment to the committed offsets, so nothing is skipped).

No record can hold the loop: a dead letter the topic cannot take is handled
by the dead-letter policy (deadletter.py), and a watcher samples every
partition's lag and flags a stall on /ready whatever its cause (watching.py).

The loop talks to Kafka through :class:`Source` (aiokafka's consumer fits it
as is) and to its outputs through the publishing and dead-letter seams.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import structlog
from aiokafka import TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from fleetcast.consumer import (
    access,
    conditions,
    deadletter,
    encoding,
    processing,
    publishing,
    state,
    tracing,
    watching,
)
from fleetcast.consumer.metrics import Metrics
from fleetcast.protocol import routing
from fleetcast.protocol.control import Control

log = structlog.stdlib.get_logger(__name__)

#: Failures a batch survives by retrying: the server is away, not the data bad.
RETRYABLE: Final = (RedisError, KafkaError, OSError, asyncio.TimeoutError)
#: Longest a rebalance waits for the batch in flight before revoking anyway (s).
REVOKE_WAIT_S: Final = 5.0
#: Records decoded between two yields to the event loop (about 1.5 ms of CPU).
PREPARE_SLICE: Final = 500
#: Batches decoded ahead of the one in Redis: enough to overlap, little to redo.
QUEUE_DEPTH: Final = 2
#: Longest a new assignment waits for the check of its publish fences (seconds).
FENCE_CHECK_S: Final = 5.0


class Source(Protocol):
    """The part of aiokafka's AIOKafkaConsumer the loop uses."""

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[processing.Record]]: ...

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    def assignment(self) -> set[TopicPartition]: ...

    async def position(self, partition: TopicPartition) -> int: ...

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]: ...


class EscalationSink(Protocol):
    """What follows alerts and acknowledgements for escalation (escalating.Escalations)."""

    async def observe(self, routed: Sequence[processing.Routed]) -> None: ...


class ControlSink(Protocol):
    """Where control messages go (control.ControlWriter): Redis, before the commit."""

    async def apply(self, controls: Sequence[Control]) -> None: ...


@dataclass(frozen=True, slots=True)
class Options:
    table: routing.RoutingTable = field(default_factory=routing.RoutingTable.default)
    max_event_bytes: int = 64 * 1024
    batch_max: int = 2000
    poll_timeout_ms: int = 100
    backoff_max_s: float = 5.0
    shutdown_timeout_s: float = 10.0
    commit_interval_s: float = 1.0
    dlq_policy: conditions.Policy = "continue"
    dlq_recheck_s: float = 30.0
    dlq_max_record_bytes: int = 1_048_576
    stall_after_s: float = 30.0
    #: Longest the final commit may take once the loop stops (seconds).
    stop_step_timeout_s: float = 5.0
    #: Records of this topic are control messages (None: no control topic).
    control_topic: str | None = None
    #: Events that take access away (consumer/access.py), by event type.
    access_rules: Mapping[str, access.Rule] = field(default_factory=lambda: access.DEFAULT_RULES)
    #: What closes an incident or ends an alert, for the org state tables.
    state_rules: state.Rules = field(default_factory=state.Rules)


def backoff(attempt: int, cap: float) -> float:
    """0.1 s doubling per attempt, capped."""
    return float(min(cap, 0.1 * 2 ** min(attempt, 10)))


@dataclass(frozen=True, slots=True)
class Ready:
    """A batch ready for delivery: polled under ``generation``, its Redis call encoded."""

    generation: int
    batch: processing.Batch
    #: None when no event of the batch goes to Redis.
    call: encoding.Call | None
    #: The spans of its traced events (None: tracing off, or none sampled).
    spans: tracing.Spans | None = None


class Pipeline:
    def __init__(
        self,
        source: Source,
        publisher: publishing.Publisher,
        dead_letters: deadletter.DeadLetterSink,
        metrics: Metrics,
        options: Options,
        state: conditions.State | None = None,
        controls: ControlSink | None = None,
        escalations: EscalationSink | None = None,
        tracer: tracing.BatchTracer | None = None,
    ) -> None:
        if options.control_topic is not None and controls is None:
            raise ValueError("a control topic needs a ControlSink")
        self._source = source
        self._publisher = publisher
        self._controls = controls
        self._escalations = escalations
        self._tracer = tracer
        self._metrics = metrics
        self._options = options
        self.state = state or conditions.State()
        self.state.dead_letters = conditions.DeadLetterHealth(
            options.dlq_policy, options.dlq_recheck_s
        )
        self._dead_letters = deadletter.DeadLetters(
            dead_letters, self.state.dead_letters, metrics, options.dlq_max_record_bytes
        )
        self._router = processing.Router(options.table)
        #: Offsets delivered but not yet committed (a commit failed or is due).
        self._pending: dict[TopicPartition, int] = {}
        #: Per partition polled in this generation: the next offset to deliver.
        self._undelivered: dict[TopicPartition, int] = {}
        self._watcher = watching.Watcher(
            source, self._undelivered, metrics, self.state, options.stall_after_s
        )
        self._commit_due = asyncio.Event()
        #: Held while a batch is delivered; a rebalance waits for it (see Listener).
        self.in_flight = asyncio.Lock()
        #: Bumped on every revocation: batches polled before it are stale.
        self.generation = 0

    async def run(self, stopping: asyncio.Event) -> None:
        """Run until ``stopping`` is set; batches already polled are finished first."""
        queue: asyncio.Queue[Ready | None] = asyncio.Queue(QUEUE_DEPTH)
        poller = asyncio.create_task(self._poll_loop(queue, stopping), name="poller")
        committer = asyncio.create_task(self._commit_loop(), name="committer")
        watcher = asyncio.create_task(self._watcher.run(), name="watcher")
        try:
            await self._deliver_loop(queue, stopping)
        finally:
            for task in (poller, committer, watcher):
                task.cancel()
            ended = await asyncio.gather(poller, committer, watcher, return_exceptions=True)
            with contextlib.suppress(TimeoutError):  # Kafka away: it redelivers the rest
                async with asyncio.timeout(self._options.stop_step_timeout_s):
                    await self.commit()
        for outcome in ended:
            if isinstance(outcome, Exception):  # a bug, not an outage: crash loudly
                raise outcome

    async def _poll_loop(self, queue: asyncio.Queue[Ready | None], stopping: asyncio.Event) -> None:
        """Poll, decode, route and encode ahead of delivery (at most QUEUE_DEPTH batches).

        Encoding here, not at delivery, lets Redis start the next batch as soon
        as it answers the one before.

        Always ends the queue, also when it fails, so delivery never waits forever.
        """
        try:
            while not stopping.is_set():
                self.state.last_turn = time.monotonic()
                polled = await self._poll(stopping)
                # Tagged after the poll: what aiokafka returns belongs to the current assignment.
                generation = self.generation
                for tp, records in polled.items():
                    if records:
                        self._undelivered.setdefault(tp, records[0].offset)
                if polled:
                    batch = await self._prepare(polled)
                    # Before encoding: a traced event's wire item carries its span.
                    spans = self._tracer.begin(batch, polled) if self._tracer else None
                    call = self._publisher.encode(batch.routed) if batch.routed else None
                    await queue.put(Ready(generation, batch, call, spans))
        finally:
            await queue.put(None)

    async def _deliver_loop(
        self, queue: asyncio.Queue[Ready | None], stopping: asyncio.Event
    ) -> None:
        while (ready := await queue.get()) is not None:
            async with self.in_flight:
                if ready.generation != self.generation:
                    tracing.BatchTracer.end(ready.spans, published=False)
                    continue  # polled before a rebalance: Kafka will deliver it again
                delivered = await self._deliver(ready, stopping)
                tracing.BatchTracer.end(ready.spans, published=delivered)
                if not delivered:
                    return
                self._delivered(ready.batch)

    async def _commit_loop(self) -> None:
        """Commit what was delivered, at most once per ``commit_interval_s``.

        A commit per batch would cost the broker a request per batch at low
        rates; a redelivery of up to one interval is dropped by the publish fence.
        """
        while True:
            await self._commit_due.wait()
            self._commit_due.clear()
            if not await self.commit():
                await asyncio.sleep(min(1.0, self._options.backoff_max_s))
                self._commit_due.set()
                continue
            await asyncio.sleep(self._options.commit_interval_s)

    async def _poll(self, stopping: asyncio.Event) -> Mapping[TopicPartition, Sequence[Any]]:
        try:
            return await self._source.getmany(
                timeout_ms=self._options.poll_timeout_ms, max_records=self._options.batch_max
            )
        except RETRYABLE as exc:
            self._metrics.errors.labels("poll").inc()
            log.warning("kafka poll failed", error=repr(exc))
            await pause(stopping, min(1.0, self._options.backoff_max_s))
            return {}

    async def _prepare(
        self, polled: Mapping[TopicPartition, Sequence[processing.Record]]
    ) -> processing.Batch:
        """Decode and route a poll, a slice at a time.

        Yielding between slices keeps the loop responsive while Redis works on
        the batch before: the rest of that batch's request gets written to the
        socket, and its reply is read as soon as it comes, instead of after
        the whole poll is decoded (about 7 ms for 2,000 records).
        """
        batch = processing.Batch()
        for n, part in enumerate(processing.slices(polled, PREPARE_SLICE)):
            if n:  # a small poll (the usual case at a steady rate) goes through at once
                await asyncio.sleep(0)
            processing.prepare(
                part,
                self._router,
                max_event_bytes=self._options.max_event_bytes,
                into=batch,
                control_topic=self._options.control_topic,
                now=time.time(),
                access_rules=self._options.access_rules if self._controls is not None else {},
                state_rules=self._options.state_rules,
            )
        self._metrics.batch_size.observe(len(batch))
        for topic, count in batch.consumed.items():
            self._metrics.consumed.labels(topic).inc(count)
        self._metrics.unrouted.inc(batch.unrouted)
        return batch

    def _delivered(self, batch: processing.Batch) -> None:
        """Make the batch's offsets committable, and update lag."""
        for (topic, partition), offset in batch.offsets.items():
            tp = TopicPartition(topic, partition)
            self._pending[tp] = offset
            self._undelivered[tp] = offset
            self._watcher.delivered(tp, offset)
        self._commit_due.set()

    async def _deliver(self, ready: Ready, stopping: asyncio.Event) -> bool:
        """Publish, then dead-letter the batch, each retried until done; False: shutdown first."""
        call = ready.call
        if call is not None:

            async def publish() -> bool:
                await self._publish(call)
                return True

            if not await self._until_done("redis", publish, stopping):
                return False
        controls, sink = ready.batch.controls, self._controls
        if controls and sink is not None:

            async def act() -> bool:
                await sink.apply(controls)
                self._metrics.controls.inc(len(controls))
                return True

            if not await self._until_done("control", act, stopping):
                return False
        watcher, routed = self._escalations, ready.batch.routed
        if watcher is not None and routed:

            async def observe() -> bool:
                await watcher.observe(routed)
                return True

            if not await self._until_done("escalation", observe, stopping):
                return False
        letters = ready.batch.dead

        async def dead_letter() -> bool:
            nonlocal letters
            letters = await self._dead_letters.write(letters)  # the ones to retry
            return not letters

        return not letters or await self._until_done("dead_letter", dead_letter, stopping)

    async def _until_done(
        self, stage: str, attempt: Callable[[], Awaitable[bool]], stopping: asyncio.Event
    ) -> bool:
        """Call ``attempt`` until it returns True, with backoff; False once shutdown ran out."""
        tries = 0
        deadline: float | None = None
        while True:
            try:
                if await attempt():
                    return True
            except RETRYABLE as exc:
                self._metrics.errors.labels(stage).inc()
                error = repr(exc)
                log.warning("delivery failed; retrying", stage=stage, attempt=tries, error=error)
            if stopping.is_set():
                deadline = deadline or time.monotonic() + self._options.shutdown_timeout_s
                if time.monotonic() >= deadline:
                    log.error("shutting down with an undelivered batch; it will be redelivered")
                    return False
            self.state.last_turn = time.monotonic()
            await asyncio.sleep(backoff(tries, self._options.backoff_max_s))
            tries += 1

    async def _publish(self, call: encoding.Call) -> None:
        started = time.perf_counter()
        outcome = await self._publisher.publish(call)
        self._metrics.publish_latency.observe(time.perf_counter() - started)
        self._metrics.published.inc(outcome.published)
        self._metrics.duplicates.inc(outcome.duplicates)

    async def commit(self, only: set[TopicPartition] | None = None) -> bool:
        """Commit delivered offsets; False (and they stay pending) if Kafka refused."""
        offsets = {tp: o for tp, o in self._pending.items() if only is None or tp in only}
        if not offsets:
            return True
        try:
            await self._source.commit(offsets)
        except RETRYABLE as exc:
            self._metrics.errors.labels("commit").inc()
            log.warning("offset commit failed; will retry", error=repr(exc))
            return False
        self._metrics.commits.inc()
        for tp, offset in offsets.items():
            if self._pending.get(tp) == offset:
                del self._pending[tp]
        return True

    async def check_fences(self, assigned: set[TopicPartition]) -> None:
        """Drop publish fences left by an earlier incarnation of a topic (best effort).

        A fence at or past its partition's end offset cannot be this topic's:
        it would silently drop the new topic's first records as redeliveries.
        """
        if not assigned:
            return
        try:
            async with asyncio.timeout(FENCE_CHECK_S):
                ends = await self._source.end_offsets(sorted(assigned))
                stale = await self._publisher.drop_stale_fences(
                    {(tp.topic, tp.partition): end for tp, end in ends.items()}
                )
        except (*RETRYABLE, TimeoutError) as exc:
            log.warning("publish fences not checked", error=repr(exc))
            return
        if stale:
            log.warning("stale publish fences dropped (topic created again?)", fences=stale)

    def forget(self, keep: set[TopicPartition]) -> None:
        """Drop pending offsets and lag of partitions this process no longer owns."""
        for tp in [tp for tp in self._pending if tp not in keep]:
            del self._pending[tp]
        for tp in [tp for tp in self._undelivered if tp not in keep]:
            del self._undelivered[tp]
        self._watcher.forget(keep)

    def rewound(self) -> None:
        """Batches polled so far will not be delivered: where delivery resumes is Kafka's to say."""
        self._undelivered.clear()


class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """Commits what was delivered before partitions move to another process."""

    def __init__(self, pipeline: Pipeline) -> None:
        self._pipeline = pipeline

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        pipeline = self._pipeline
        pipeline.generation += 1  # batches polled so far will not be delivered
        try:
            await asyncio.wait_for(pipeline.in_flight.acquire(), REVOKE_WAIT_S)
        except TimeoutError:
            pipeline.rewound()
            await self._commit(revoked)
            return
        try:
            pipeline.rewound()
            await self._commit(revoked)
        finally:
            pipeline.in_flight.release()

    async def _commit(self, revoked: set[TopicPartition]) -> None:
        """Bounded: with the coordinator gone, aiokafka's commit waits for it forever."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(REVOKE_WAIT_S):
                await self._pipeline.commit(set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._pipeline.forget(set(assigned))
        await self._pipeline.check_fences(set(assigned))
        self._pipeline.state.joined = True
        log.info("partitions assigned", count=len(assigned))


async def pause(stopping: asyncio.Event, seconds: float) -> None:
    """Sleep, but wake up at once on shutdown."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stopping.wait(), seconds)
