"""Report rendering: tables, ratios fleetcast/socket.io, missing figures, failed scenarios."""

from __future__ import annotations

import dataclasses
import math

import pytest

from bench import cli, report
from bench.results import Connections, Delivery, ScenarioResult, Table
from bench.stats import summarize

INFO = report.RunInfo(
    command="python -m bench --scenario fanout",
    started="2026-11-25T18:00:00",
    duration_s=90.0,
    machine="test box, 2 cores",
    cpu_plan="server on core 0",
    versions={"python": "3.11", "socket.io": "4.8.4"},
)


def connections(server: str, rss_per_conn: float) -> Connections:
    return Connections(
        "fanout", server, 1000, 1000, 0, {}, 2.0, 150.0, 80 << 20, 100 << 20, rss_per_conn, 1.5
    )


def delivery(server: str, cpu_us: float, p99_us: float, lost: int = 0) -> Delivery:
    latency = summarize([p99_us / 2] * 98 + [p99_us, p99_us])
    return Delivery(
        scenario="fanout",
        server=server,
        clients=1000,
        phase="paced",
        published=100,
        offered_per_s=40_000.0,
        expected=100_000,
        received=100_000 - lost,
        lost=lost,
        duplicated=0,
        unexpected=0,
        clients_with_loss=1 if lost else 0,
        lost_by_category={"priority": lost, "position": 0},
        closed_clients=0,
        closes={},
        window_s=2.5,
        deliveries_per_s=40_000.0,
        server_cpu_s=cpu_us * 0.1,
        cpu_us_per_delivery=cpu_us,
        server_cpu_pct=40.0,
        loadgen_cpu_pct=20.0,
        others_cores=0.1,
        server_wait_pct=2.0,
        loadgen_wait_pct=3.0,
        latency_us={"all": latency, "priority": latency, "position": summarize([])},
    )


def fanout_result(lost: int = 0) -> ScenarioResult:
    result = ScenarioResult("fanout", "Broadcast", "K clients in one room.")
    result.connections = [connections("fleetcast", 30_000.0), connections("socket.io", 20_000.0)]
    result.deliveries = [
        delivery("fleetcast", 14.0, 4000.0, lost),
        delivery("socket.io", 7.0, 2000.0),
    ]
    return result


def test_ratios_pair_fleetcast_with_the_reference() -> None:
    (ratio,) = report.ratios(fanout_result())
    assert (ratio.clients, ratio.phase) == (1000, "paced")
    assert ratio.cpu == pytest.approx(2.0)
    assert ratio.rss == pytest.approx(1.5)
    assert ratio.p99 == pytest.approx(2.0)
    assert ratio.rate == pytest.approx(1.0)


def test_no_ratio_without_the_reference() -> None:
    result = fanout_result()
    result.deliveries = [d for d in result.deliveries if d.server == "fleetcast"]
    assert report.ratios(result) == []


def test_rendered_report_has_tables_ratios_and_run_info() -> None:
    text = report.render(INFO, [fanout_result()])
    assert "Command: `python -m bench --scenario fanout`" in text
    assert "| fleetcast | 1,000 | 1,000 | 0 | 2.0 | 500 | 150 | 80.0 | 29.3 | 1.5 |" in text
    assert "| 1,000 | paced | 2.00x | 1.50x | 2.00x | 1.00x | 1.00x |" in text
    assert "## fanout: Broadcast" in text
    assert "Latency by category" not in text  # one category only: no split table


def test_losses_are_shown_by_category_with_the_counters_that_moved() -> None:
    result = fanout_result(lost=3)
    moved = {"fleetcast_gateway_canary_failures_total": 2.0}
    result.deliveries[0] = dataclasses.replace(result.deliveries[0], server_counters=moved)
    text = report.render(INFO, [result])
    assert "**3** (priority 3)" in text
    assert "- fleetcast K=1,000 paced: `fleetcast_gateway_canary_failures_total` +2" in text


def test_failed_scenario_and_custom_tables() -> None:
    broken = ScenarioResult(
        "consumer", "Consumer", "Kafka to Redis.", error="RuntimeError: no broker"
    )
    broken.tables.append(Table("Throughput", ["events/s"], [["50,000"]], note="target 50k"))
    text = report.render(INFO, [broken])
    assert "**Not measured:** RuntimeError: no broker" in text
    assert "**Throughput**\n\n| events/s |\n|---|\n| 50,000 |\n\ntarget 50k" in text


def test_missing_figures_print_as_dash() -> None:
    assert report.num(math.nan) == "-"
    assert report.num(None) == "-"
    assert report.num(1234.567, 1) == "1,234.6"
    assert report.num(1234.567, 0) == "1,235"


def test_every_server_is_also_compared_with_centrifugo() -> None:
    result = fanout_result()
    result.connections.append(
        dataclasses.replace(connections("centrifugo", 60_000.0), connect_s=0.5)
    )
    result.deliveries.append(delivery("centrifugo", 28.0, 1000.0))
    pairs = [(r.subject, r.reference) for r in report.all_ratios(result)]
    assert pairs == [
        ("fleetcast", "socket.io"),
        ("fleetcast", "centrifugo"),
        ("socket.io", "centrifugo"),
    ]
    ours = report.all_ratios(result)[1]
    assert (ours.cpu, ours.rss, ours.connects) == pytest.approx((0.5, 0.5, 0.25))
    text = report.render(INFO, [result])
    assert "Ratios fleetcast / centrifugo" in text
    assert "| 1,000 | paced | 0.50x | 0.50x | 4.00x | 1.00x | 0.25x |" in text


def test_room_copies_have_their_own_column() -> None:
    result = fanout_result()
    result.deliveries[0] = dataclasses.replace(
        result.deliveries[0], server="centrifugo", room_copies=4120
    )
    text = report.deliveries_table(result.deliveries)
    assert "| dup | room copies | leaked |" in text
    assert "| centrifugo | 1,000 | paced | 100 | 100,000 | 0 | 0 | 4,120 | 0 |" in text


def test_ratio_lines_for_the_terminal() -> None:
    (line,) = report.ratio_lines([fanout_result()])
    assert "fleetcast/socket.io" in line
    assert "CPU/delivery 2.00x" in line


def test_command_line_defaults_and_quick() -> None:
    full = cli.parse([])
    assert full.clients is None
    assert not full.quick
    assert full.scenarios[0] == "fanout"
    quick = cli.parse(["--quick", "--scenario", "fanout,mix", "--servers", "fleetcast"])
    assert quick.clients is None
    assert quick.scenarios == ("fanout", "mix")
    assert quick.servers == ("fleetcast",)
    assert quick.seconds == 2.0
    assert cli.parse(["--clients", "1000,5000"]).clients == (1000, 5000)


def test_only_a_full_default_run_replaces_the_committed_report() -> None:
    assert cli.parse([]).publish
    assert cli.parse(["--nice", "-10"]).publish
    assert not cli.parse(["--quick"]).publish
    assert not cli.parse(["--scenario", "fanout"]).publish
    assert not cli.parse(["--clients", "1000"]).publish
    assert cli.parse(["--scenario", "fanout", "--publish"]).publish


def test_command_line_refuses_unknown_names() -> None:
    with pytest.raises(SystemExit):
        cli.parse(["--scenario", "nope"])
    with pytest.raises(SystemExit):
        cli.parse(["--servers", "nginx"])
