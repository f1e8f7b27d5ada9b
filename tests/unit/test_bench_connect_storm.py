"""The connect-storm benchmark's pure parts: backoff, times to a share, its tables."""

from __future__ import annotations

import random

from bench import stats
from bench.loadgen.backoff import Backoff
from bench.loadgen.control import ConnectResult
from bench.scenarios import connect_storm


def test_backoff_doubles_to_its_cap_randomized_both_ways() -> None:
    rule = Backoff(delay_s=1.0, max_s=5.0, randomization=0.5)
    rng = random.Random(3)
    waits = [[rule.delay(failures, rng) for _ in range(200)] for failures in range(5)]
    for failures, drawn in enumerate(waits):
        base = min(5.0, 2.0**failures)
        assert base * 0.5 <= min(drawn) < base * 0.6
        assert base * 1.4 < max(drawn) <= base * 1.5


def test_times_to_shares_say_never_when_a_share_was_not_reached() -> None:
    times = [0.1 * i for i in range(1, 101)]
    assert stats.times_to_shares(times, 100) == {"50%": 5.0, "99%": 9.9, "100%": 10.0}
    assert stats.times_to_shares(times[:99], 100) == {"50%": 5.0, "99%": 9.9, "100%": None}


def storm(server: str, ready_s: list[float], cpu_s: float) -> connect_storm.StormFigures:
    got = ConnectResult(len(ready_s), 1, {"timeout": 1}, 9.0, {"refused": 7}, ready_s)
    return connect_storm.figures(server, got, cpu_s, 40.0, len(ready_s) + 1)


def test_figures_and_ratios_to_centrifugo() -> None:
    ours = storm("fleetcast", [0.5, 1.0, 2.0, 4.0], 0.004)
    peer = storm("centrifugo", [0.5, 0.5, 1.0, 1.0], 0.001)
    assert ours.time_to == {"50%": 2.0, "99%": None, "100%": None}  # 4 of 5 ready
    assert ours.connects_per_s == 4 / 9.0  # never all ready: over the whole attempt
    assert ours.cpu_us_per_connect == 1000.0
    table = connect_storm.figures_table([ours, peer])
    assert table.rows[0][0] == "fleetcast (core 0)"
    assert table.rows[1][0] == "centrifugo (cores 0+1)"
    assert table.rows[0][4] == "7 (refused: 7)"
    ratios = connect_storm.ratios_table([ours, peer])
    assert ratios.rows == [["fleetcast / centrifugo", "1.00x", "4.00x", "-"]]


def test_no_ratios_without_centrifugo() -> None:
    table = connect_storm.ratios_table([storm("fleetcast", [1.0], 0.001)])
    assert table.rows == []
    assert "did not run" in table.note
