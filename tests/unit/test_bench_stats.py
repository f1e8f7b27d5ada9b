"""The benchmark's arithmetic: percentiles, summaries, per-delivery costs, ratios."""

from __future__ import annotations

import math

import pytest

from bench import stats


def test_nearest_rank_percentiles_are_real_samples() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert stats.percentile(values, 50) == 50.0
    assert stats.percentile(values, 99) == 99.0
    assert stats.percentile(values, 99.9) == 100.0
    assert stats.percentile(values, 100) == 100.0
    assert stats.percentile(values, 0) == 1.0


def test_percentile_of_one_value_and_of_none() -> None:
    assert stats.percentile([7.0], 99) == 7.0
    assert math.isnan(stats.percentile([], 50))


def test_percentile_outside_range_is_refused() -> None:
    with pytest.raises(ValueError, match="outside"):
        stats.percentile([1.0], 101)


def test_summary_sorts_its_input() -> None:
    summary = stats.summarize([5.0, 1.0, 3.0, 2.0, 4.0])
    assert (summary.count, summary.p50, summary.max, summary.mean) == (5, 3.0, 5.0, 3.0)


def test_empty_summary_is_nan_and_survives_json_round_trip() -> None:
    empty = stats.summarize([])
    assert empty.count == 0
    assert math.isnan(empty.p99)
    doc = {
        k: (None if isinstance(v, float) and math.isnan(v) else v)
        for k, v in empty.as_dict().items()
    }
    back = stats.LatencySummary.from_dict(doc)
    assert back.count == 0
    assert math.isnan(back.max)


def test_summary_round_trips() -> None:
    summary = stats.summarize([1.0, 2.0, 3.0])
    assert stats.LatencySummary.from_dict(summary.as_dict()) == summary


def test_cpu_per_delivery_in_microseconds() -> None:
    assert stats.cpu_us_per_delivery(0.5, 50_000) == pytest.approx(10.0)
    assert math.isnan(stats.cpu_us_per_delivery(1.0, 0))


def test_bytes_per_connection() -> None:
    assert stats.bytes_per_connection(120_000_000, 100_000_000, 1000) == 20_000
    assert math.isnan(stats.bytes_per_connection(1, 0, 0))


def test_ratio_and_rate_guard_missing_figures() -> None:
    assert stats.ratio(14.0, 7.0) == 2.0
    assert math.isnan(stats.ratio(1.0, 0.0))
    assert math.isnan(stats.ratio(math.nan, 1.0))
    assert stats.rate(100, 2.0) == 50.0
    assert math.isnan(stats.rate(100, 0.0))
