"""How fleetcast-client prints: pipe-friendly JSON lines, readable colored lines."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import orjson

from fleetcast.client import output, session, summary

T0 = datetime(2026, 11, 25, 18, 0, tzinfo=UTC).timestamp()
INCIDENT = {
    "event_id": "e-1",
    "event_type": "incident_created",
    "organization_id": "org-42",
    "occurred_at": "2026-11-25T18:00:00Z",
    "data": {"priority": 1, "incident_id": "inc-9", "lat": 45.123456789, "notes": {"nested": 1}},
    "room": "org",
    "offset": "1-0",
}


def test_event_line_without_color_names_time_latency_type_room_and_ids_first() -> None:
    line = output.event_line("incident_created", INCIDENT, T0 + 0.042, output.painter(False))
    assert line.startswith("18:00:00.042")
    assert "42ms" in line
    assert "incident_created" in line
    assert " org " in line
    assert line.index("incident_id=inc-9") < line.index("priority=1")
    assert "lat=45.12346" in line
    assert "nested" not in line
    assert "\033[" not in line


def test_color_marks_alerts_and_slow_events() -> None:
    paint = output.painter(True)
    assert paint("x", output.family("alert_created")) == "\033[1;31mx\033[0m"
    assert output.latency_style(50) == "ok"
    assert output.latency_style(500) == "warn"
    assert output.latency_style(5000) == "bad"
    assert output.family("asset_positions") == "position"
    assert output.family("transcription_completed") == "transmission"


def test_batch_and_snapshot_details_count_positions() -> None:
    batch = {"data": {"positions": [{"asset_id": "a"}, {"asset_id": "b"}]}}
    assert output.detail("asset_positions", batch) == "2 positions"
    snapshot = {"data": {"positions": {"a": {"asset_id": "a"}}, "statuses": {}}}
    assert output.detail("fleet_snapshot", snapshot) == "snapshot of 1 assets"


def test_json_mode_writes_payload_lines_on_stdout_and_json_status_on_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    printer = output.Printer(out, err, json_mode=True, color=True)
    printer.event("incident_created", INCIDENT, T0)
    printer.status("refused", "subscribe x: forbidden", code="forbidden")
    stats = summary.Summary(started_at=T0)
    stats.record("incident_created", INCIDENT, T0 + 0.01)
    printer.summary(stats.report(T0 + 1))
    assert orjson.loads(out.getvalue()) == INCIDENT
    status, summary_line = (orjson.loads(line) for line in err.getvalue().splitlines())
    assert status == {"status": "refused", "message": "subscribe x: forbidden", "code": "forbidden"}
    assert summary_line["summary"]["by_type"] == {"incident_created": 1}
    assert summary_line["summary"]["latency_ms"]["p50"] == 10.0


def test_quiet_prints_no_events() -> None:
    out, err = io.StringIO(), io.StringIO()
    output.Printer(out, err, json_mode=False, color=False, quiet=True).event("x", {}, T0)
    assert out.getvalue() == ""


def test_pretty_summary_lists_types_and_latency() -> None:
    stats = summary.Summary(started_at=T0)
    stats.record("alert_created", {"occurred_at": "2026-11-25T18:00:00Z"}, T0 + 0.002)
    text = "\n".join(output.summary_lines(stats.report(T0 + 1), output.painter(False)))
    assert "1 events in 1.0s" in text
    assert "alert_created" in text
    assert "p50 2.0 ms" in text


def test_refusal_reads_connect_error_data_tolerantly() -> None:
    assert session.refusal({"code": "rate_limited", "message": "busy", "retry_after_ms": 1500}) == (
        "rate_limited",
        "busy",
        1.5,
    )
    assert session.refusal({"code": "server_full", "retry_after": 2}) == ("server_full", "", 2.0)
    assert session.refusal("Connection refused") == ("unreachable", "Connection refused", None)
