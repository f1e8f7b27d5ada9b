"""fleetcast-client's run statistics: counts, rate, latency percentiles."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fleetcast.client import summary

T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC).timestamp()


def test_parse_time_accepts_z_and_offsets_and_rejects_naive() -> None:
    assert summary.parse_time("2026-11-25T18:00:00Z") == T0
    assert summary.parse_time("2026-11-25T19:00:00+01:00") == T0
    assert summary.parse_time("2026-11-25T18:00:00.250Z") == T0 + 0.25
    assert summary.parse_time("2026-11-25T18:00:00") is None
    assert summary.parse_time("yesterday") is None
    assert summary.parse_time(None) is None


def test_latency_is_receive_time_minus_occurred_at() -> None:
    assert summary.latency_ms("2026-11-25T18:00:00Z", T0 + 0.012) == pytest.approx(12.0, abs=0.01)
    assert summary.latency_ms(12345, T0) is None


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([], 50, None),
        ([7.0], 99, 7.0),
        ([1.0, 2.0, 3.0, 4.0], 50, 2.0),
        ([float(v) for v in range(1, 101)], 99, 99.0),
        ([float(v) for v in range(1, 101)], 100, 100.0),
    ],
)
def test_percentile_is_nearest_rank(values: list[float], q: float, expected: float | None) -> None:
    assert summary.percentile(values, q) == expected


def event(event_type: str, occurred_at: str, **data: object) -> dict[str, object]:
    return {"event_type": event_type, "occurred_at": occurred_at, "data": data}


def test_report_counts_types_rate_and_latency() -> None:
    stats = summary.Summary(started_at=T0)
    for ms in (10, 20, 30, 40):
        stats.record(
            "incident_created", event("incident_created", "2026-11-25T18:00:00Z"), T0 + ms / 1000
        )
    stats.record("alert_created", event("alert_created", "2026-11-25T18:00:00Z"), T0 + 0.5)
    report = stats.report(T0 + 2.0)
    assert report.total == 5
    assert report.rate == pytest.approx(2.5)
    assert report.counts == (("incident_created", 4), ("alert_created", 1))
    assert report.p50_ms == pytest.approx(30.0)
    assert report.p99_ms == pytest.approx(500.0)
    assert report.as_dict()["by_type"] == {"incident_created": 4, "alert_created": 1}


def test_batch_counts_each_position_latency_and_snapshot_none() -> None:
    stats = summary.Summary(started_at=T0)
    batch = {
        "event_type": "asset_positions",
        "data": {
            "positions": [
                {"asset_id": "a-1", "lat": 1.0, "lon": 2.0, "occurred_at": "2026-11-25T18:00:00Z"},
                {
                    "event_type": "asset_position_updated",
                    "occurred_at": "2026-11-25T18:00:00.5Z",
                    "data": {"asset_id": "a-2", "lat": 1.0, "lon": 2.0},
                },
                "garbage",
            ]
        },
    }
    stats.record("asset_positions", batch, T0 + 1.0)
    stats.record(
        "fleet_snapshot", {"data": {"positions": [{"occurred_at": "2026-11-25T17:00:00Z"}]}}, T0
    )
    report = stats.report(T0 + 1.0)
    assert report.positions_in_batches == 2
    assert report.latency_samples == 2
    assert report.max_ms == pytest.approx(1000.0)
    assert dict(report.counts) == {"asset_positions": 1, "fleet_snapshot": 1}


def test_events_without_a_time_count_but_add_no_latency() -> None:
    stats = summary.Summary(started_at=T0)
    stats.record("custom", {"no": "time"}, T0)
    stats.record("custom", "not a mapping", T0)
    report = stats.report(T0)
    assert report.total == 2
    assert report.latency_samples == 0
    assert report.p50_ms is None
    assert report.rate == 0.0
