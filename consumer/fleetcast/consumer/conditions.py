"""What /health and /ready report, and the conditions behind them (pure, time passed in).

Two ways a consumer can be up and connected and still not do its job, and
neither shows in a ping:

- the dead-letter topic cannot take records (:class:`DeadLetterHealth`);
- a partition has lag and nothing of it is delivered (:class:`StallDetector`).

Each is a condition with a start and an end rather than a per-record state,
so the caller logs its transitions (once each) and exports it as a gauge.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Final, Generic, Literal, TypeVar

#: Why the dead-letter topic cannot take a record (failures retrying will not fix).
Cause = Literal["too_large", "unauthorized", "unknown_topic", "rejected"]
Policy = Literal["continue", "block"]
K = TypeVar("K", bound=Hashable)
#: /health fails when the loop has not turned for this long (seconds).
LOOP_STUCK_S: Final = 60.0


@dataclass(slots=True)
class DeadLetterHealth:
    """Whether the dead-letter topic takes records, and what a failure means.

    The condition starts at the first failure retrying will not fix and ends
    at the next write the topic accepts. Under "continue", the records it
    cannot take are skipped (the caller logs each) and, for ``recheck_s``
    after a failed attempt, later ones are skipped without trying, so a
    broken topic costs the event flow one attempt per ``recheck_s``, not one
    per record. Under "block", every attempt is made and failures are retried.
    """

    policy: Policy = "continue"
    recheck_s: float = 30.0
    #: None while the topic takes records.
    cause: Cause | None = None
    #: When the condition started (monotonic seconds).
    since: float = 0.0
    last_attempt: float = field(default=-math.inf)

    @property
    def blocks(self) -> bool:
        return self.policy == "block"

    @property
    def rechecking(self) -> bool:
        """Whether the next attempt only checks if the condition is over."""
        return self.cause is not None and not self.blocks

    def should_attempt(self, now: float) -> bool:
        """False: skip the records without trying (the topic failed moments ago)."""
        return not self.rechecking or now - self.last_attempt >= self.recheck_s

    def attempted(self, now: float) -> None:
        self.last_attempt = now

    def failed(self, cause: Cause, now: float) -> bool:
        """Record a failure; True when it starts the condition or changes its cause."""
        changed = cause != self.cause
        if self.cause is None:
            self.since = now
        self.cause = cause
        return changed

    def recovered(self) -> Cause | None:
        """A write succeeded: the cause of the condition it ends, if there was one."""
        ended, self.cause = self.cause, None
        return ended


@dataclass(slots=True)
class StallDetector(Generic[K]):
    """Stalled: a partition with lag whose next offset to deliver has not moved for ``after_s``.

    "Moved" is measured on the offset the pipeline delivers next, so a
    backlog being worked through is not a stall, and a partition that was
    caught up starts its clock only when it falls behind (an event after an
    idle hour is not "nothing delivered for an hour").
    """

    after_s: float
    #: partition -> (next offset to deliver, since when it is behind at that offset);
    #: absent while the partition is caught up.
    _marks: dict[K, tuple[int, float]] = field(default_factory=dict)

    def observe(self, partitions: Mapping[K, tuple[int, int]], now: float) -> list[K]:
        """Take (next offset to deliver, lag) per assigned partition; returns the stalled ones."""
        stalled = []
        for partition, (offset, lag) in partitions.items():
            if lag <= 0:
                self._marks.pop(partition, None)
                continue
            mark = self._marks.get(partition)
            if mark is None or mark[0] != offset:
                mark = self._marks[partition] = (offset, now)
            if now - mark[1] >= self.after_s:
                stalled.append(partition)
        for gone in self._marks.keys() - partitions.keys():
            del self._marks[gone]
        return stalled


@dataclass(slots=True)
class State:
    """What /health and /ready look at: one per process, updated by the loop."""

    joined: bool = False
    stopping: bool = False
    last_turn: float = field(default_factory=time.monotonic)
    #: "topic:partition" of each stalled partition (see StallDetector); empty when flowing.
    stalled: list[str] = field(default_factory=list)
    dead_letters: DeadLetterHealth = field(default_factory=DeadLetterHealth)

    def healthy(self) -> bool:
        """The loop turns (a process stuck in a loop that does not is restarted)."""
        return time.monotonic() - self.last_turn < LOOP_STUCK_S

    def checks(self) -> dict[str, bool]:
        """/ready's checks other than Redis (which needs I/O): all true means ready."""
        return {
            "joined": self.joined,
            "running": not self.stopping,
            "flowing": not self.stalled,
            "dead_letters": self.dead_letters.cause is None,
        }

    def problems(self) -> dict[str, object]:
        """What is wrong, for /ready's body (empty when nothing is)."""
        found: dict[str, object] = {}
        if self.stalled:
            found["stalled"] = self.stalled
        if self.dead_letters.cause is not None:
            found["dead_letter_topic"] = self.dead_letters.cause
        return found
