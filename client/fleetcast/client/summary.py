"""Run statistics: events by type, rate and delivery latency. Pure, no I/O.

Latency is ``received_at - occurred_at``: the age of an event when it reached
this client, which is what a dispatcher feels. It includes clock skew between
the producer and this machine, so it is exact only on one host (``make run``).
A fleet batch (``asset_positions``) contributes one latency per position it
carries; a snapshot contributes none (its positions are old on purpose).
"""

from __future__ import annotations

import math
from collections import Counter, deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

#: Latency samples kept; percentiles describe the most recent ones.
MAX_SAMPLES: Final = 200_000
BATCH_TYPE: Final = "asset_positions"
SNAPSHOT_TYPE: Final = "fleet_snapshot"


def is_snapshot(name: str) -> bool:
    """Events that describe state rather than report something new (any ``*snapshot*``)."""
    return "snapshot" in name


def parse_time(text: object) -> float | None:
    """ISO 8601 (``2026-11-25T18:00:00.123Z``) to epoch seconds, or None."""
    if not isinstance(text, str):
        return None
    try:
        stamp = datetime.fromisoformat(text)
    except ValueError:
        return None
    if stamp.tzinfo is None:
        return None
    return stamp.timestamp()


def latency_ms(occurred_at: object, received_at: float) -> float | None:
    occurred = parse_time(occurred_at)
    return None if occurred is None else (received_at - occurred) * 1000.0


def percentile(ordered: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values (``q`` in 0..100)."""
    if not ordered:
        return None
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def batch_positions(payload: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The positions inside an ``asset_positions`` batch, read tolerantly.

    Accepts ``data.positions`` or top-level ``positions`` (a list, or an
    object keyed by asset id), each item either a position ``data`` object or
    a whole envelope with its own ``data``.
    """
    data = payload.get("data")
    holder = data if isinstance(data, Mapping) else payload
    items = holder.get("positions")
    if isinstance(items, Mapping):
        items = list(items.values())
    if not isinstance(items, list):
        return []
    return [item for item in items if isinstance(item, Mapping)]


def event_times(name: str, payload: object) -> Iterable[object]:
    """Every ``occurred_at`` one received event stands for."""
    if is_snapshot(name) or not isinstance(payload, Mapping):
        return ()
    if name == BATCH_TYPE:
        return [item.get("occurred_at") for item in batch_positions(payload)]
    return (payload.get("occurred_at"),)


@dataclass(frozen=True, slots=True)
class Report:
    total: int
    elapsed_s: float
    counts: tuple[tuple[str, int], ...]
    positions_in_batches: int
    latency_samples: int
    p50_ms: float | None
    p99_ms: float | None
    max_ms: float | None

    @property
    def rate(self) -> float:
        return self.total / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.total,
            "elapsed_s": round(self.elapsed_s, 3),
            "rate_per_s": round(self.rate, 2),
            "by_type": dict(self.counts),
            "positions_in_batches": self.positions_in_batches,
            "latency_ms": {
                "samples": self.latency_samples,
                "p50": _round(self.p50_ms),
                "p99": _round(self.p99_ms),
                "max": _round(self.max_ms),
            },
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


@dataclass
class Summary:
    """Accumulates what one run received; :meth:`report` freezes it."""

    started_at: float
    counts: Counter[str] = field(default_factory=Counter)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=MAX_SAMPLES))
    positions_in_batches: int = 0

    def record(self, name: str, payload: object, received_at: float) -> None:
        self.counts[name] += 1
        if name == BATCH_TYPE and isinstance(payload, Mapping):
            self.positions_in_batches += len(batch_positions(payload))
        for occurred_at in event_times(name, payload):
            value = latency_ms(occurred_at, received_at)
            if value is not None:
                self.latencies.append(value)

    def report(self, now: float) -> Report:
        ordered = sorted(self.latencies)
        return Report(
            total=sum(self.counts.values()),
            elapsed_s=max(0.0, now - self.started_at),
            counts=tuple(sorted(self.counts.items(), key=lambda kv: (-kv[1], kv[0]))),
            positions_in_batches=self.positions_in_batches,
            latency_samples=len(ordered),
            p50_ms=percentile(ordered, 50),
            p99_ms=percentile(ordered, 99),
            max_ms=ordered[-1] if ordered else None,
        )
