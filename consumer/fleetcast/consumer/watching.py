"""Lag of every assigned partition, sampled on a clock, and the stall detector on it.

Lag used to be set only after a batch was delivered, so a wedged consumer
showed the lag of its last good moment (0) forever. Here it is sampled every
second from what the consumer itself knows, without a broker round trip:
the partition's high watermark (from the last fetch) minus the next offset
the pipeline has to deliver (records polled but still in the pipeline are
lag), or, for a partition nothing was polled from yet, its fetch position.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from typing import Final, Protocol

import structlog
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError

from fleetcast.consumer import conditions
from fleetcast.consumer.metrics import Metrics

log = structlog.stdlib.get_logger(__name__)

#: Seconds between two samples.
INTERVAL_S: Final = 1.0
#: Longest wait for aiokafka's fetch position of one partition (it waits while
#: the position is being reset after an assignment; the next sample will do).
POSITION_TIMEOUT_S: Final = 0.2


class Assigned(Protocol):
    """The part of aiokafka's consumer the watcher reads."""

    def assignment(self) -> set[TopicPartition]: ...

    def highwater(self, partition: TopicPartition) -> int | None: ...

    async def position(self, partition: TopicPartition) -> int: ...


class Watcher:
    """Samples lag into the metrics and the stall detector into ``state.stalled`` (/ready).

    ``undelivered`` is the pipeline's own map of partition -> next offset to deliver.
    """

    def __init__(
        self,
        source: Assigned,
        undelivered: Mapping[TopicPartition, int],
        metrics: Metrics,
        state: conditions.State,
        stall_after_s: float,
    ) -> None:
        self._source = source
        self._undelivered = undelivered
        self._metrics = metrics
        self._state = state
        self._detector = conditions.StallDetector[TopicPartition](stall_after_s)
        #: Partitions the lag gauge has a series for.
        self._labelled: set[TopicPartition] = set()

    async def run(self) -> None:
        """Sample until cancelled."""
        while True:
            await self.sample()
            await asyncio.sleep(INTERVAL_S)

    def delivered(self, tp: TopicPartition, offset: int) -> None:
        """A batch of ``tp`` was delivered up to ``offset``: its lag at once, between samples."""
        high = self._source.highwater(tp)
        if high is not None:
            self._set_lag(tp, max(0, high - offset))

    def forget(self, keep: set[TopicPartition]) -> None:
        """Drop the lag of partitions no longer assigned."""
        for tp in self._labelled - keep:
            self._metrics.lag.remove(tp.topic, str(tp.partition))
        self._labelled &= keep

    async def sample(self) -> None:
        lags = await self._lags()
        now = time.monotonic()
        for tp, (_, lag) in lags.items():
            self._set_lag(tp, lag)
        stalled = sorted(f"{tp.topic}:{tp.partition}" for tp in self._detector.observe(lags, now))
        before = self._state.stalled
        if stalled and not before:
            log.error(
                "consumer stalled: lag and nothing delivered",
                partitions=stalled,
                after_s=self._detector.after_s,
                lag=sum(lag for _, lag in lags.values()),
            )
        elif before and not stalled:
            log.warning("consumer delivering again", partitions=before)
        self._state.stalled = stalled
        self._metrics.stalled.set(1 if stalled else 0)

    def _set_lag(self, tp: TopicPartition, lag: int) -> None:
        self._metrics.lag.labels(tp.topic, str(tp.partition)).set(lag)
        self._labelled.add(tp)

    async def _lags(self) -> dict[TopicPartition, tuple[int, int]]:
        """partition -> (next offset to deliver, lag), where the high watermark is known."""
        highs = {}
        for tp in self._source.assignment():  # no await in between: one consistent view
            high = self._source.highwater(tp)
            if high is not None:
                highs[tp] = high
        lags = {}
        for tp, high in highs.items():
            offset = self._undelivered.get(tp)
            if offset is None:
                offset = await self._position(tp)
            if offset is not None:
                lags[tp] = (offset, max(0, high - offset))
        return lags

    async def _position(self, tp: TopicPartition) -> int | None:
        try:
            async with asyncio.timeout(POSITION_TIMEOUT_S):
                return await self._source.position(tp)
        except (KafkaError, TimeoutError):  # unassigned meanwhile, or being reset
            return None
