"""Dead letters: copies that always fit, which failures are conditions, and the policy.

The sink is a fake here (its seam); tests/integration/test_consumer_poison.py
runs the same code against the real broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaTimeoutError,
    MessageSizeTooLargeError,
    NotLeaderForPartitionError,
    RecordListTooLargeError,
    RequestTimedOutError,
    TopicAuthorizationFailedError,
    UnknownError,
    UnknownTopicOrPartitionError,
)

from fleetcast.consumer import conditions, deadletter, processing
from fleetcast.consumer.metrics import Metrics

LIMIT = 20_000


def letter(value: bytes | None = b"not json", key: bytes | None = b"org-a", offset: int = 7) -> Any:
    return processing.DeadLetter(
        topic="fleet.alerts",
        partition=2,
        offset=offset,
        key=key,
        value=value,
        reason="oversized",
        message="event is too large",
    )


def header(copy: deadletter.Copy, name: str) -> str | None:
    found = dict(copy.headers).get(name)
    return None if found is None else found.decode()


# --- the copy --------------------------------------------------------------------------


def test_a_copy_that_fits_is_the_record_as_it_came_with_its_origin() -> None:
    copy = deadletter.copy_of(letter(), LIMIT)
    assert (copy.key, copy.value, copy.truncated) == (b"org-a", b"not json", False)
    assert header(copy, deadletter.HEADER_TOPIC) == "fleet.alerts"
    assert header(copy, deadletter.HEADER_PARTITION) == "2"
    assert header(copy, deadletter.HEADER_OFFSET) == "7"
    assert header(copy, deadletter.HEADER_REASON) == "oversized"
    assert header(copy, deadletter.HEADER_ORIGINAL_SIZE) is None


@pytest.mark.parametrize("size", [LIMIT - 200, LIMIT, LIMIT + 1, 5 * LIMIT, 1_048_450])
def test_a_copy_too_large_is_cut_to_the_limit_and_says_so(size: int) -> None:
    value = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    copy = deadletter.copy_of(letter(value), LIMIT)
    assert deadletter.record_size(copy.key, copy.value, copy.headers) <= LIMIT
    assert copy.value is not None
    assert value.startswith(copy.value)
    if copy.truncated:
        assert header(copy, deadletter.HEADER_ORIGINAL_SIZE) == str(size)
        # As long as fits: one byte more would not.
        longer = value[: len(copy.value) + 1]
        assert deadletter.record_size(copy.key, longer, copy.headers) > LIMIT
    else:
        assert copy.value == value


def test_an_outsized_key_is_cut_too() -> None:
    copy = deadletter.copy_of(letter(b"v" * 100, key=b"k" * (2 * LIMIT)), LIMIT)
    assert copy.key == b"k" * deadletter.MAX_KEY_KEPT
    assert header(copy, deadletter.HEADER_ORIGINAL_KEY_SIZE) == str(2 * LIMIT)
    assert copy.value == b"v" * 100
    assert deadletter.record_size(copy.key, copy.value, copy.headers) <= LIMIT


def test_a_tombstone_with_a_huge_key_fits_as_well() -> None:
    copy = deadletter.copy_of(letter(None, key=b"k" * (2 * LIMIT)), LIMIT)
    assert copy.value is None
    assert deadletter.record_size(copy.key, copy.value, copy.headers) <= LIMIT


async def test_the_size_counted_is_the_one_aiokafkas_producer_checks() -> None:
    """Pins the aiokafka internal deadletter.record_size relies on (see its docstring):
    AIOKafkaProducer._serialize refuses a record whose
    DefaultRecordBatchBuilder.estimate_size_in_bytes exceeds max_request_size."""
    producer = AIOKafkaProducer(max_request_size=LIMIT)
    try:
        copy = deadletter.copy_of(letter(b"x" * LIMIT), LIMIT)
        producer._serialize(copy.key, copy.value, copy.headers)
        with pytest.raises(MessageSizeTooLargeError):
            producer._serialize(copy.key, (copy.value or b"") + b"x", copy.headers)
    finally:
        await producer.stop()


# --- which failures are conditions -----------------------------------------------------


@pytest.mark.parametrize(
    ("error", "cause"),
    [
        (MessageSizeTooLargeError(), "too_large"),
        (RecordListTooLargeError(), "too_large"),
        (TopicAuthorizationFailedError(), "unauthorized"),
        (ClusterAuthorizationFailedError(), "unauthorized"),
        (UnknownTopicOrPartitionError(), "unknown_topic"),
        (InvalidTopicError(), "unknown_topic"),
        (UnknownError(), "rejected"),
        # The broker away, a leader moving: retried, whatever aiokafka's flag says.
        (KafkaConnectionError(), None),
        (KafkaTimeoutError(), None),
        (RequestTimedOutError(), None),
        (NotLeaderForPartitionError(), None),
        (OSError("connection reset"), None),
        (TimeoutError(), None),
    ],
)
def test_failures_retrying_will_not_fix_have_a_cause(error: BaseException, cause: str) -> None:
    assert deadletter.unwritable_cause(error) == cause


# --- the policy ------------------------------------------------------------------------


class FakeSink:
    """Answers each send with the next list of outcomes (None: stored), then stores."""

    def __init__(self, *answers: Sequence[BaseException | None]) -> None:
        self.answers = list(answers)
        self.sent: list[tuple[list[deadletter.Copy], float | None]] = []

    async def send(
        self, copies: Sequence[deadletter.Copy], timeout_s: float | None = None
    ) -> list[BaseException | None]:
        self.sent.append((list(copies), timeout_s))
        await asyncio.sleep(0)
        if self.answers:
            return list(self.answers.pop(0))
        return [None] * len(copies)


def stage(
    sink: FakeSink, policy: conditions.Policy = "continue", recheck_s: float = 60.0
) -> tuple[deadletter.DeadLetters, Metrics]:
    metrics = Metrics()
    health = conditions.DeadLetterHealth(policy, recheck_s)
    return deadletter.DeadLetters(sink, health, metrics, LIMIT), metrics


def value(metric: Any) -> float:
    return float(metric._value.get())


async def test_continue_skips_what_the_topic_cannot_take_and_holds_nothing() -> None:
    sink = FakeSink([UnknownTopicOrPartitionError()])
    dead_letters, metrics = stage(sink)
    assert await dead_letters.write([letter()]) == []  # nothing to retry: skipped
    assert dead_letters.health.cause == "unknown_topic"
    assert value(metrics.dead_letters_dropped.labels("unknown_topic")) == 1
    assert value(metrics.dead_letter_unwritable) == 1
    # Within the recheck interval, the next ones are skipped without trying.
    assert await dead_letters.write([letter(offset=8), letter(offset=9)]) == []
    assert len(sink.sent) == 1
    assert value(metrics.dead_letters_dropped.labels("unknown_topic")) == 3


async def test_after_the_recheck_interval_one_short_attempt_ends_the_condition() -> None:
    sink = FakeSink([UnknownTopicOrPartitionError()])
    dead_letters, metrics = stage(sink, recheck_s=0.0)
    await dead_letters.write([letter()])
    assert await dead_letters.write([letter(offset=8)]) == []
    (_, first_timeout), (copies, recheck_timeout) = sink.sent
    assert (first_timeout, recheck_timeout) == (None, deadletter.RECHECK_TIMEOUT_S)
    assert [header(c, deadletter.HEADER_OFFSET) for c in copies] == ["8"]
    assert dead_letters.health.cause is None
    assert value(metrics.dead_letter_unwritable) == 0
    assert value(metrics.dead_lettered.labels("oversized")) == 1


async def test_a_recheck_that_times_out_is_the_condition_going_on() -> None:
    sink = FakeSink([TopicAuthorizationFailedError()], [TimeoutError()])
    dead_letters, metrics = stage(sink, recheck_s=0.0)
    await dead_letters.write([letter()])
    assert await dead_letters.write([letter(offset=8)]) == []
    assert dead_letters.health.cause == "unauthorized"
    assert value(metrics.dead_letters_dropped.labels("unauthorized")) == 2


async def test_block_retries_what_the_topic_cannot_take() -> None:
    sink = FakeSink([UnknownTopicOrPartitionError()], [UnknownTopicOrPartitionError()])
    dead_letters, metrics = stage(sink, policy="block")
    bad = [letter()]
    assert await dead_letters.write(bad) == bad
    assert await dead_letters.write(bad) == bad  # no recheck window: every attempt is made
    assert dead_letters.health.cause == "unknown_topic"
    assert await dead_letters.write(bad) == []
    assert dead_letters.health.cause is None
    assert not list(metrics.dead_letters_dropped.collect()[0].samples)
    assert value(metrics.errors.labels("dead_letter")) == 2


async def test_the_broker_away_is_retried_under_either_policy_and_is_no_condition() -> None:
    for policy in ("continue", "block"):
        dead_letters, _ = stage(FakeSink([KafkaConnectionError()]), policy=policy)
        assert await dead_letters.write([letter()]) == [letter()]
        assert dead_letters.health.cause is None


async def test_only_the_letters_that_failed_are_retried_or_skipped() -> None:
    sink = FakeSink([None, MessageSizeTooLargeError(), KafkaConnectionError()])
    dead_letters, metrics = stage(sink)
    letters = [letter(offset=n) for n in range(3)]
    assert await dead_letters.write(letters) == [letters[2]]
    assert value(metrics.dead_lettered.labels("oversized")) == 1
    assert value(metrics.dead_letters_dropped.labels("too_large")) == 1
    assert dead_letters.health.cause == "too_large"


async def test_a_truncated_copy_is_counted() -> None:
    dead_letters, metrics = stage(FakeSink())
    await dead_letters.write([letter(b"x" * 2 * LIMIT)])
    assert value(metrics.dead_letters_truncated) == 1


# --- the Kafka sink, through a producer stand-in ---------------------------------------


class FakeProducer:
    """Raises from send() for the records named in ``refuse``; acks the others (or never)."""

    def __init__(self, refuse: dict[int, BaseException], ack: bool = True) -> None:
        self.refuse, self.ack, self.calls = refuse, ack, 0

    async def send(self, topic: str, value: bytes | None, **_: Any) -> asyncio.Future[object]:
        n, self.calls = self.calls, self.calls + 1
        if n in self.refuse:
            raise self.refuse[n]
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        if self.ack:
            future.set_result(None)
        return future


def copies(count: int) -> list[deadletter.Copy]:
    return [deadletter.copy_of(letter(offset=n), LIMIT) for n in range(count)]


async def test_an_error_before_queueing_is_the_topics_and_ends_the_batch() -> None:
    producer = FakeProducer({1: UnknownTopicOrPartitionError()})
    sink = deadletter.KafkaDeadLetters(producer, "dlq")
    outcomes = await sink.send(copies(4))
    assert outcomes[0] is None
    assert all(isinstance(o, UnknownTopicOrPartitionError) for o in outcomes[1:])
    assert producer.calls == 2  # the rest would wait for the same metadata: not tried


async def test_a_record_too_large_is_its_own_failure() -> None:
    producer = FakeProducer({1: MessageSizeTooLargeError()})
    sink = deadletter.KafkaDeadLetters(producer, "dlq")
    outcomes = await sink.send(copies(3))
    assert [type(o) for o in outcomes] == [type(None), MessageSizeTooLargeError, type(None)]


async def test_writes_not_acknowledged_in_time_time_out() -> None:
    producer = FakeProducer({}, ack=False)
    sink = deadletter.KafkaDeadLetters(producer, "dlq")
    outcomes = await sink.send(copies(2), timeout_s=0.05)
    assert all(isinstance(o, TimeoutError) for o in outcomes)
