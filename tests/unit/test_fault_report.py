"""The report's table (tests.faults.report): rendered from recorded outcomes, pure."""

from __future__ import annotations

import dataclasses

import pytest

from tests.faults import report, scenarios
from tests.harness.counting import Totals


def outcome(fault: str, *, lost: int, recovery_s: float | None) -> scenarios.Outcome:
    totals = Totals(
        clients=10, expected=12_000, delivered=12_000 - lost, announced=0, superseded=0,
        unresumable=0,
        lost=lost, duplicates=3, cross_room=3, misrouted=0, recovery_s=recovery_s,
        clients_with_loss=1 if lost else 0, reconnects=5, resyncs=0, announcements=0,
        refusals=0, connect_refusals=0, errors=0, lost_sample=(),
    )  # fmt: skip
    return scenarios.Outcome(
        fault=fault, did="gateway 0 SIGKILL", fault_s=0.0, traffic_s=60.2, produced=12_040,
        failed_sends=0, rate=200.0, totals=totals,
        not_ready_s={"gateway 0": 40.1, "gateway 1": 0.0, "consumer": 1.5},
        counters={"gateway 1: fleetcast_gateway_recoveries_total{result=complete}": 22.0},
        exited=["gateway 0"],
    )  # fmt: skip


def rows(*outcomes: scenarios.Outcome) -> dict[str, dict[str, object]]:
    return {o.fault: report.row_data(o, scenarios.REPORT, "abc1234") for o in outcomes}


def test_a_row_says_what_happened_how_much_was_lost_and_how_to_measure_it_again() -> None:
    rendered = report.table(rows(outcome("gateway-kill", lost=7, recovery_s=0.25)))
    [line] = [line for line in rendered.splitlines() if "SIGKILL: its clients" in line]
    cells = [cell.strip() for cell in line.split("|")[1:-1]]
    assert cells[2:6] == ["**7** / 12,000", "0", "3 (3 via another room)", "0.25 s"]
    assert "5 reconnections to the other gateway" in cells[1]
    assert "not running at the end: gateway 0" in cells[1]
    assert "/ready 503: consumer 1.5 s" in cells[1]  # the exited gateway is not "not ready"
    assert "recoveries_total{result=complete} +22" in cells[1]
    assert cells[6].startswith("`abc1234`")
    assert cells[6].endswith("`.venv/bin/python -m tests.faults.report --fault gateway-kill`")


def test_every_fault_has_a_row_in_the_suites_order_measured_or_not() -> None:
    rendered = report.table(rows(outcome("pubsub-kill", lost=0, recovery_s=None)))
    body = rendered.splitlines()[2:]
    assert len(body) == len(scenarios.FAULTS)
    assert all(f"--fault {f.id}`" in line for f, line in zip(scenarios.FAULTS, body, strict=True))
    assert "never (> 60 s)" in body[0]
    assert "stalled" in body[0]
    assert "/ready stayed 200" not in body[0]  # gateway 0 and the consumer were not ready
    assert "not measured yet" in body[1]


def test_the_table_replaces_only_what_is_between_the_markers() -> None:
    doc = f"intro\n{report.BEGIN}\nold table\n{report.END}\noutro\n"
    assert report.rewrite(doc, "new") == f"intro\n{report.BEGIN}\nnew\n{report.END}\noutro\n"
    with pytest.raises(ValueError, match="markers"):
        report.rewrite("no markers here", "new")


def test_a_recorded_row_round_trips_the_outcome() -> None:
    first = outcome("kafka-pause", lost=0, recovery_s=0.5)
    row = report.row_data(first, scenarios.SUITE, "abc1234")
    assert row["outcome"] == dataclasses.asdict(first)
    assert row["timing"]["after_s"] == scenarios.SUITE.after_s
