"""The loop's ordering rules, through its seams: deliver first, commit after.

Fakes stand in for Kafka and Redis here only to pin the order of calls; the
integration tests run the same loop against the real servers.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import orjson
import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaConnectionError, UnknownTopicOrPartitionError
from redis.exceptions import ConnectionError as RedisConnectionError

from fleetcast.consumer import deadletter, encoding, pipeline, processing, publishing
from fleetcast.consumer.metrics import Metrics


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    value: bytes | None
    key: bytes | None = None


def position(offset: int) -> Rec:
    envelope = {
        "event_id": f"e-{offset}",
        "event_type": "asset_position_updated",
        "organization_id": "org-1",
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": {"asset_id": "u-1"},
    }
    return Rec("fleet.assets", 0, offset, orjson.dumps(envelope))


class Journal(list[str]):
    """The order in which the loop touched its collaborators."""


class FakeSource:
    def __init__(self, journal: Journal, polls: list[list[Rec]], stopping: asyncio.Event) -> None:
        self.journal, self.polls, self.stopping = journal, polls, stopping
        self.committed: dict[TopicPartition, int] = {}

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> Mapping[TopicPartition, Sequence[processing.Record]]:
        await asyncio.sleep(0)
        if not self.polls:
            self.stopping.set()
            return {}
        records = self.polls.pop(0)
        return {TopicPartition("fleet.assets", 0): records}

    async def commit(self, offsets: Mapping[TopicPartition, int] | None = None) -> None:
        assert offsets is not None
        self.journal.append(f"commit {sorted(offsets.values())}")
        self.committed.update(offsets)

    def highwater(self, partition: TopicPartition) -> int | None:
        return 100

    def assignment(self) -> set[TopicPartition]:
        return {TopicPartition("fleet.assets", 0)}

    async def position(self, partition: TopicPartition) -> int:
        return 0

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, 100)


class FakePublisher:
    def __init__(self, journal: Journal, failures: int = 0) -> None:
        self.journal, self.failures = journal, failures
        self.failed = asyncio.Event()

    def encode(self, routed: Sequence[processing.Routed]) -> encoding.Call:
        return encoding.Call(routed)

    async def publish(self, call: encoding.Call) -> publishing.Outcome:
        if self.failures:
            self.failures -= 1
            self.journal.append("publish failed")
            self.failed.set()
            raise RedisConnectionError("redis is away")
        self.journal.append(f"publish {[f'e-{r.offset}' for r in call.routed]}")
        return publishing.Outcome(len(call.routed), 0)

    async def drop_stale_fences(self, ends: Mapping[tuple[str, int], int]) -> list[str]:
        self.journal.append(f"fences checked {sorted(ends.values())}")
        return []


def reason_of(copy: deadletter.Copy) -> str:
    return dict(copy.headers)[deadletter.HEADER_REASON].decode()


class FakeDeadLetters:
    """Fails its first ``failures`` sends with ``error`` (for every copy), then stores."""

    def __init__(
        self, journal: Journal, failures: int = 0, error: BaseException | None = None
    ) -> None:
        self.journal, self.failures = journal, failures
        self.error = error or KafkaConnectionError("kafka is away")

    async def send(
        self, copies: Sequence[deadletter.Copy], timeout_s: float | None = None
    ) -> list[BaseException | None]:
        if self.failures:
            self.failures -= 1
            self.journal.append("dead-letter failed")
            return [self.error] * len(copies)
        self.journal.append(f"dead-letter {[reason_of(copy) for copy in copies]}")
        return [None] * len(copies)


OPTIONS = pipeline.Options(
    backoff_max_s=0.001, shutdown_timeout_s=0.05, poll_timeout_ms=1, commit_interval_s=0
)


async def run(
    polls: list[list[Rec]],
    publish_failures: int = 0,
    dead_letter_failures: int = 0,
    dead_letters: FakeDeadLetters | None = None,
) -> tuple[Journal, FakeSource, Metrics]:
    journal, stopping, metrics = Journal(), asyncio.Event(), Metrics()
    source = FakeSource(journal, polls, stopping)
    loop = pipeline.Pipeline(
        source,
        FakePublisher(journal, publish_failures),
        dead_letters or FakeDeadLetters(journal, dead_letter_failures),
        metrics,
        OPTIONS,
    )
    await asyncio.wait_for(loop.run(stopping), 10)
    return journal, source, metrics


def published_before_each_commit(journal: Journal) -> list[tuple[int, int]]:
    """(offset committed, events published so far) at every commit."""
    published, pairs = 0, []
    for entry in journal:
        if entry.startswith("publish ["):
            published += entry.count("e-")
        elif entry.startswith("commit"):
            pairs.append((int(entry.split("[")[1].rstrip("]")), published))
    return pairs


async def test_offsets_are_committed_only_after_their_events_are_published() -> None:
    journal, source, _ = await run([[position(0), position(1)], [position(2)], [position(3)]])
    assert [e for e in journal if e.startswith("publish")] == [
        "publish ['e-0', 'e-1']",
        "publish ['e-2']",
        "publish ['e-3']",
    ]
    pairs = published_before_each_commit(journal)
    assert pairs
    assert all(committed <= published for committed, published in pairs)
    assert source.committed == {TopicPartition("fleet.assets", 0): 4}


async def test_redis_failures_are_retried_and_nothing_is_committed_before() -> None:
    journal, source, metrics = await run([[position(0)]], publish_failures=2)
    assert journal == ["publish failed", "publish failed", "publish ['e-0']", "commit [1]"]
    assert metrics.errors.labels("redis")._value.get() == 2
    assert source.committed == {TopicPartition("fleet.assets", 0): 1}


async def test_dead_letters_are_retried_without_publishing_twice() -> None:
    journal, _, metrics = await run([[position(0), Rec("fleet.assets", 0, 1, b"x")]], 0, 1)
    assert journal == [
        "publish ['e-0']",
        "dead-letter failed",
        "dead-letter ['not_json']",
        "commit [2]",
    ]
    assert metrics.dead_lettered.labels("not_json")._value.get() == 1


async def test_batches_polled_before_a_rebalance_are_not_delivered() -> None:
    journal, stopping, metrics = Journal(), asyncio.Event(), Metrics()
    source = FakeSource(journal, [[position(0)], [position(1)]], stopping)
    publisher = FakePublisher(journal)
    loop = pipeline.Pipeline(source, publisher, FakeDeadLetters(journal), metrics, OPTIONS)
    listener = pipeline.Listener(loop)
    original = publisher.publish
    revocations = []

    async def publish_then_rebalance(call: encoding.Call) -> publishing.Outcome:
        outcome = await original(call)
        if call.routed[0].offset == 0:
            await asyncio.sleep(0.01)  # let the poller queue e-1
            revoked = {TopicPartition("fleet.assets", 0)}
            revocations.append(asyncio.create_task(listener.on_partitions_revoked(revoked)))
            await asyncio.sleep(0)  # the revocation starts while this batch is in flight
        return outcome

    publisher.publish = publish_then_rebalance  # type: ignore[method-assign]
    await asyncio.wait_for(loop.run(stopping), 10)
    await asyncio.gather(*revocations)
    assert [e for e in journal if e.startswith("publish")] == ["publish ['e-0']"]
    assert source.committed == {TopicPartition("fleet.assets", 0): 1}


async def test_shutdown_with_redis_down_commits_nothing() -> None:
    journal, stopping, metrics = Journal(), asyncio.Event(), Metrics()
    source = FakeSource(journal, [[position(0)]], stopping)
    publisher = FakePublisher(journal, 10**6)
    loop = pipeline.Pipeline(source, publisher, FakeDeadLetters(journal), metrics, OPTIONS)
    task = asyncio.create_task(loop.run(stopping))
    await asyncio.wait_for(publisher.failed.wait(), 10)
    stopping.set()
    await asyncio.wait_for(task, 10)
    assert source.committed == {}
    assert all(entry == "publish failed" for entry in journal)


async def test_lag_is_the_high_watermark_minus_the_next_offset() -> None:
    _, _, metrics = await run([[position(0), position(1)]])
    assert metrics.lag.labels("fleet.assets", "0")._value.get() == 98


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [pipeline.backoff(n, 1.0) for n in range(5)] == [0.1, 0.2, 0.4, 0.8, 1.0]


async def test_a_bug_in_the_poller_stops_the_loop_loudly_instead_of_hanging() -> None:
    journal, stopping = Journal(), asyncio.Event()

    class BrokenSource(FakeSource):
        async def getmany(
            self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
        ) -> Mapping[TopicPartition, Sequence[processing.Record]]:
            raise ValueError("a bug, not an outage")

    loop = pipeline.Pipeline(
        BrokenSource(journal, [], stopping),
        FakePublisher(journal),
        FakeDeadLetters(journal),
        Metrics(),
        OPTIONS,
    )
    with pytest.raises(ValueError, match="a bug"):
        await asyncio.wait_for(loop.run(stopping), 10)


async def test_an_assignment_checks_the_publish_fences_against_the_end_offsets() -> None:
    journal, stopping = Journal(), asyncio.Event()
    loop = pipeline.Pipeline(
        FakeSource(journal, [], stopping),
        FakePublisher(journal),
        FakeDeadLetters(journal),
        Metrics(),
        OPTIONS,
    )
    await pipeline.Listener(loop).on_partitions_assigned({TopicPartition("fleet.assets", 0)})
    assert journal == ["fences checked [100]"]
    assert loop.state.joined


async def test_a_dead_letter_the_topic_cannot_take_is_skipped_and_its_offset_committed() -> None:
    _, source, metrics = await run(
        [[position(0), Rec("fleet.assets", 0, 1, b"x"), position(2)]],
        dead_letters=FakeDeadLetters(Journal(), 1, UnknownTopicOrPartitionError()),
    )
    assert source.committed == {TopicPartition("fleet.assets", 0): 3}
    assert metrics.dead_letters_dropped.labels("unknown_topic")._value.get() == 1


async def test_under_the_block_policy_nothing_passes_a_dead_letter_the_topic_refuses() -> None:
    journal, stopping, metrics = Journal(), asyncio.Event(), Metrics()
    source = FakeSource(journal, [[position(0), Rec("fleet.assets", 0, 1, b"x")]], stopping)
    sink = FakeDeadLetters(journal, 10**6, UnknownTopicOrPartitionError())
    options = dataclasses.replace(OPTIONS, dlq_policy="block")
    loop = pipeline.Pipeline(source, FakePublisher(journal), sink, metrics, options)
    await asyncio.wait_for(loop.run(stopping), 10)
    assert source.committed == {}
    assert loop.state.dead_letters.cause == "unknown_topic"


async def test_lag_counts_what_was_polled_but_not_delivered_while_wedged() -> None:
    journal, stopping, metrics = Journal(), asyncio.Event(), Metrics()
    source = FakeSource(journal, [[position(40), position(41)]], stopping)
    publisher = FakePublisher(journal, 10**6)  # Redis away: nothing is ever delivered
    options = dataclasses.replace(OPTIONS, stall_after_s=0.05)
    loop = pipeline.Pipeline(source, publisher, FakeDeadLetters(journal), metrics, options)
    source.stopping = asyncio.Event()  # the fake must not stop the loop when it runs dry
    task = asyncio.create_task(loop.run(stopping))
    await asyncio.wait_for(publisher.failed.wait(), 10)
    await loop._watcher.sample()
    await asyncio.sleep(0.06)
    await loop._watcher.sample()
    stopping.set()
    await asyncio.wait_for(task, 10)
    assert metrics.lag.labels("fleet.assets", "0")._value.get() == 100 - 40
    assert loop.state.stalled == ["fleet.assets:0"]
    assert metrics.stalled._value.get() == 1
