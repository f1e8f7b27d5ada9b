"""Latency and cost arithmetic: pure functions, unit tested.

Percentiles use the nearest-rank method (the value below which at least
``p`` percent of the samples lie), so p100 is the maximum and a reported
percentile is always a latency some message actually had.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import numpy.typing as npt


def percentile(sorted_values: Sequence[float] | npt.NDArray[np.float64], p: float) -> float:
    """Nearest-rank percentile of already sorted values; ``nan`` when empty."""
    count = len(sorted_values)
    if count == 0:
        return math.nan
    if not 0 <= p <= 100:
        raise ValueError(f"percentile {p} outside 0..100")
    rank = max(1, math.ceil(p / 100 * count))
    return float(sorted_values[rank - 1])


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """Latency figures of one set of deliveries, in microseconds."""

    count: int
    p50: float
    p90: float
    p99: float
    p999: float
    max: float
    mean: float

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> LatencySummary:
        """Inverse of :meth:`as_dict`; ``None`` (JSON's NaN) reads back as ``nan``."""
        count, *rest = (doc.get(k) for k in cls.__dataclass_fields__)
        return cls(int(count or 0), *(math.nan if v is None else float(v) for v in rest))


def summarize(values: Sequence[float] | npt.NDArray[np.float64]) -> LatencySummary:
    """Percentiles of ``values`` (microseconds, any order)."""
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    if not len(ordered):
        nan = math.nan
        return LatencySummary(0, nan, nan, nan, nan, nan, nan)
    return LatencySummary(
        count=len(ordered),
        p50=percentile(ordered, 50),
        p90=percentile(ordered, 90),
        p99=percentile(ordered, 99),
        p999=percentile(ordered, 99.9),
        max=float(ordered[-1]),
        mean=float(ordered.mean()),
    )


def cpu_us_per_delivery(cpu_seconds: float, deliveries: int) -> float:
    """Server CPU (user+sys) spent per delivered message, in microseconds."""
    return math.nan if deliveries <= 0 else cpu_seconds * 1e6 / deliveries


def bytes_per_connection(rss_with: int, rss_without: int, connections: int) -> float:
    """Resident memory each idle connection adds: (RSS with K - RSS with 0) / K."""
    return math.nan if connections <= 0 else (rss_with - rss_without) / connections


def ratio(ours: float, reference: float) -> float:
    """``ours / reference``; ``nan`` when either side is missing or the reference is 0."""
    if math.isnan(ours) or math.isnan(reference) or reference == 0:
        return math.nan
    return ours / reference


def rate(count: int, seconds: float) -> float:
    return math.nan if seconds <= 0 else count / seconds


def times_to_shares(
    times: Sequence[float], total: int, shares: Sequence[int] = (50, 99, 100)
) -> dict[str, float | None]:
    """Seconds until each share of ``total`` clients was ready (``times`` sorted).

    ``None`` for a share that was never reached: a storm that left clients
    out says so instead of reporting the last one that made it.
    """
    out: dict[str, float | None] = {}
    for share in shares:
        needed = max(1, -(-total * share // 100))
        out[f"{share}%"] = round(times[needed - 1], 3) if len(times) >= needed else None
    return out
