"""The dead-letter topic: where a record that cannot be delivered goes.

The record is copied as is (key and value), with headers saying why and where
it came from, so an operator can inspect it and replay it after a fix. The
reason header is one word of :data:`fleetcast.protocol.events.REASONS`.

No bad record may stop the loop, so two things here are bounded:

- The copy's size. A record the broker accepted (up to its 1 MiB default)
  plus our headers can exceed what the producer and the DLQ topic take, and
  such a send fails forever, however often it is retried. A copy over
  ``max_record_bytes`` goes out truncated instead, with its original size in
  a header (:func:`copy_of`).
- What a failing topic costs. A failure retrying will not fix (the topic is
  missing or forbidden, the record too large for it) is a condition
  (:class:`fleetcast.consumer.conditions.DeadLetterHealth`): logged once,
  counted, shown on /ready, and handled by the policy setting; a failure
  that is the broker being away is retried, as for Redis.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Final, NamedTuple, Protocol

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    BrokerResponseError,
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    KafkaError,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)
from aiokafka.record.default_records import DefaultRecordBatchBuilder

from fleetcast.consumer import conditions, processing
from fleetcast.consumer.metrics import Metrics

log = structlog.stdlib.get_logger(__name__)

HEADER_REASON: Final = "fleetcast-reason"
HEADER_ERROR: Final = "fleetcast-error"
HEADER_TOPIC: Final = "fleetcast-topic"
HEADER_PARTITION: Final = "fleetcast-partition"
HEADER_OFFSET: Final = "fleetcast-offset"
#: Present only on a truncated copy: the original value's (and key's) size in bytes.
HEADER_ORIGINAL_SIZE: Final = "fleetcast-original-size"
HEADER_ORIGINAL_KEY_SIZE: Final = "fleetcast-original-key-size"
#: The error text is for humans; bound it so a header never dwarfs the record.
MAX_ERROR_CHARS: Final = 500
#: A key is an org id (at most 128 bytes); a longer one is cut to this when the copy is too large.
MAX_KEY_KEPT: Final = 1024
#: A recheck of a topic known to fail gives up after this long (seconds): the
#: metadata of a topic created since arrives in milliseconds.
RECHECK_TIMEOUT_S: Final = 2.0


def headers(letter: processing.DeadLetter) -> list[tuple[str, bytes]]:
    return [
        (HEADER_REASON, letter.reason.encode()),
        (HEADER_ERROR, letter.message[:MAX_ERROR_CHARS].encode()),
        (HEADER_TOPIC, letter.topic.encode()),
        (HEADER_PARTITION, str(letter.partition).encode()),
        (HEADER_OFFSET, str(letter.offset).encode()),
    ]


class Copy(NamedTuple):
    """What goes to the dead-letter topic for one letter."""

    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes]]
    truncated: bool


def record_size(key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]) -> int:
    """A record's size as aiokafka's producer checks it against ``max_request_size``.

    The one internal of aiokafka relied on here (pinned by a unit test): the
    producer's own estimate of a one-record batch, the unit the broker's
    max.message.bytes applies to.
    """
    size: int = DefaultRecordBatchBuilder.estimate_size_in_bytes(key, value, headers)
    return size


def copy_of(letter: processing.DeadLetter, max_bytes: int) -> Copy:
    """The letter's copy, truncated (value first, then an outsized key) to ``max_bytes``."""
    marks = headers(letter)
    key, value = letter.key, letter.value
    if record_size(key, value, marks) <= max_bytes:
        return Copy(key, value, marks, truncated=False)
    if value is not None:
        marks.append((HEADER_ORIGINAL_SIZE, str(len(value)).encode()))
    if key is not None and len(key) > MAX_KEY_KEPT:
        marks.append((HEADER_ORIGINAL_KEY_SIZE, str(len(key)).encode()))
        key = key[:MAX_KEY_KEPT]
    if value is not None:
        value = _cut(key, value, marks, max_bytes)
    return Copy(key, value, marks, truncated=True)


def _cut(key: bytes | None, value: bytes, marks: list[tuple[str, bytes]], max_bytes: int) -> bytes:
    """The longest prefix of ``value`` that fits (length varints make it a few tries)."""
    cut = value[: max(0, max_bytes - record_size(key, b"", marks))]
    while cut and (over := record_size(key, cut, marks) - max_bytes) > 0:
        cut = cut[: len(cut) - over]
    return cut


def unwritable_cause(error: BaseException) -> conditions.Cause | None:
    """Why the topic cannot take a record, for failures retrying will not fix; else None.

    aiokafka's own ``retriable`` flag is no guide here: it calls an unknown
    topic retriable (it is raised only after the producer waited its whole
    request timeout for the topic to appear, which is what "missing" means),
    and a timeout not (the broker away, exactly what retrying is for).
    """
    if isinstance(error, MessageSizeTooLargeError | RecordListTooLargeError):
        return "too_large"
    if isinstance(error, TopicAuthorizationFailedError | ClusterAuthorizationFailedError):
        return "unauthorized"
    if isinstance(error, UnknownTopicOrPartitionError | InvalidTopicError):
        return "unknown_topic"
    if isinstance(error, BrokerResponseError) and not error.retriable:
        return "rejected"
    return None


class DeadLetterSink(Protocol):
    """Stores dead-letter copies: one outcome per copy, None when stored, else its error."""

    async def send(
        self, copies: Sequence[Copy], timeout_s: float | None = None
    ) -> list[BaseException | None]: ...


class KafkaDeadLetters:
    """DeadLetterSink writing to a Kafka topic through a started producer.

    The producer's ``max_request_size`` must be at least the copies' bound
    (app.py builds it so), and its ``request_timeout_ms`` bounds each write.
    """

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(
        self, copies: Sequence[Copy], timeout_s: float | None = None
    ) -> list[BaseException | None]:
        outcomes: list[BaseException | None] = [None] * len(copies)
        futures: dict[int, asyncio.Future[object]] = {}
        try:
            async with asyncio.timeout(timeout_s):
                await self._queue(copies, outcomes, futures)
                await asyncio.gather(*futures.values(), return_exceptions=True)
        except TimeoutError as exc:
            timed_out: BaseException | None = exc
        else:
            timed_out = None
        for n, future in futures.items():
            if not future.done() or future.cancelled():
                outcomes[n] = timed_out or TimeoutError("dead-letter write not acknowledged")
            else:
                outcomes[n] = future.exception()
        for n in range(len(copies)):
            if n not in futures and outcomes[n] is None:
                outcomes[n] = timed_out
        return outcomes

    async def _queue(
        self,
        copies: Sequence[Copy],
        outcomes: list[BaseException | None],
        futures: dict[int, asyncio.Future[object]],
    ) -> None:
        """Hand the copies to the producer; an error before queueing is the topic's."""
        for n, copy in enumerate(copies):
            try:
                futures[n] = await self._producer.send(
                    self._topic, copy.value, key=copy.key, headers=copy.headers
                )
            except MessageSizeTooLargeError as exc:  # this record's alone
                outcomes[n] = exc
            except (KafkaError, OSError) as exc:  # the topic's or the broker's: the rest too
                outcomes[n:] = [exc] * (len(copies) - n)
                return


class DeadLetters:
    """The dead letters of a batch to the sink, and the policy when it cannot take them."""

    def __init__(
        self,
        sink: DeadLetterSink,
        health: conditions.DeadLetterHealth,
        metrics: Metrics,
        max_record_bytes: int,
    ) -> None:
        self._sink = sink
        self.health = health
        self._metrics = metrics
        self._max_bytes = max_record_bytes

    async def write(self, letters: Sequence[processing.DeadLetter]) -> list[processing.DeadLetter]:
        """Write ``letters``; returns the ones to retry (none: all written or skipped by policy)."""
        health, now = self.health, time.monotonic()
        if not health.should_attempt(now):
            assert health.cause is not None
            self._skip(letters, health.cause)
            return []
        rechecking = health.rechecking
        health.attempted(now)
        copies = [copy_of(letter, self._max_bytes) for letter in letters]
        outcomes = await self._sink.send(copies, RECHECK_TIMEOUT_S if rechecking else None)
        if None in outcomes:  # the topic takes records (a failure below may set it again)
            self._recovered(now)
        retry, errors = [], []
        for letter, copy, outcome in zip(letters, copies, outcomes, strict=True):
            if outcome is None:
                self._written(letter, copy)
                continue
            cause = unwritable_cause(outcome) or (health.cause if rechecking else None)
            if cause is not None:
                self._failed(cause, outcome, now)
            if cause is None or health.blocks:
                retry.append(letter)
                errors.append(outcome)
            else:
                self._skip([letter], cause)
        if retry:
            self._metrics.errors.labels("dead_letter").inc()
            error = repr(errors[0])
            log.warning("dead letters not written; retrying", count=len(retry), error=error)
        return retry

    def _written(self, letter: processing.DeadLetter, copy: Copy) -> None:
        self._metrics.dead_lettered.labels(letter.reason).inc()
        if copy.truncated:
            self._metrics.dead_letters_truncated.inc()
        log.warning(
            "dead-lettered",
            reason=letter.reason,
            detail=letter.message,
            topic=letter.topic,
            partition=letter.partition,
            offset=letter.offset,
            truncated=copy.truncated,
        )

    def _skip(self, letters: Sequence[processing.DeadLetter], cause: conditions.Cause) -> None:
        """Under "continue": the record's only trace is this line; its offset gets committed."""
        for letter in letters:
            self._metrics.dead_letters_dropped.labels(cause).inc()
            log.error(
                "dead letter not written; record skipped",
                cause=cause,
                reason=letter.reason,
                topic=letter.topic,
                partition=letter.partition,
                offset=letter.offset,
                bytes=len(letter.value or b""),
            )

    def _failed(self, cause: conditions.Cause, error: BaseException, now: float) -> None:
        if self.health.failed(cause, now):
            self._metrics.dead_letter_unwritable.set(1)
            log.error(
                "dead-letter topic cannot take records",
                cause=cause,
                policy=self.health.policy,
                error=repr(error),
            )

    def _recovered(self, now: float) -> None:
        ended = self.health.recovered()
        if ended is not None:
            self._metrics.dead_letter_unwritable.set(0)
            since = self.health.since
            log.warning("dead-letter topic takes records again", cause=ended, after_s=now - since)
