"""The conditions /ready reports: the stall detector and the dead-letter health, pure."""

from __future__ import annotations

from fleetcast.consumer import conditions


def test_a_partition_caught_up_never_stalls_however_long_it_is_idle() -> None:
    detector = conditions.StallDetector[str](after_s=10)
    for now in range(0, 100, 5):
        assert detector.observe({"p": (42, 0)}, now) == []


def test_lag_that_is_worked_through_is_no_stall() -> None:
    detector = conditions.StallDetector[str](after_s=10)
    for step, now in enumerate(range(0, 100, 5)):
        assert detector.observe({"p": (step * 100, 5_000)}, now) == []


def test_lag_with_nothing_delivered_for_after_s_is_a_stall_and_ends_on_delivery() -> None:
    detector = conditions.StallDetector[str](after_s=10)
    assert detector.observe({"p": (42, 0), "q": (7, 0)}, 0) == []
    assert detector.observe({"p": (42, 3), "q": (7, 0)}, 5) == []  # behind since 5
    assert detector.observe({"p": (42, 3), "q": (7, 0)}, 14) == []
    assert detector.observe({"p": (42, 9), "q": (7, 0)}, 15) == ["p"]
    assert detector.observe({"p": (43, 8), "q": (7, 0)}, 16) == []  # one record delivered
    assert detector.observe({"p": (43, 8), "q": (7, 0)}, 26) == ["p"]


def test_an_event_after_an_idle_hour_starts_the_clock_then() -> None:
    detector = conditions.StallDetector[str](after_s=10)
    detector.observe({"p": (42, 0)}, 0)
    assert detector.observe({"p": (42, 1)}, 3600) == []
    assert detector.observe({"p": (42, 1)}, 3610) == ["p"]


def test_partitions_no_longer_assigned_are_forgotten() -> None:
    detector = conditions.StallDetector[str](after_s=10)
    detector.observe({"p": (42, 5)}, 0)
    detector.observe({}, 5)
    assert detector.observe({"p": (42, 5)}, 12) == []  # its clock started again at 12


def test_the_dead_letter_condition_is_reported_once_per_start_or_new_cause() -> None:
    health = conditions.DeadLetterHealth("continue", recheck_s=30)
    assert health.should_attempt(0)
    health.attempted(0)
    assert health.failed("unknown_topic", 0) is True
    assert health.failed("unknown_topic", 1) is False
    assert health.failed("unauthorized", 2) is True
    assert health.since == 0
    assert health.recovered() == "unauthorized"
    assert health.recovered() is None


def test_continue_waits_recheck_s_between_attempts_while_failing_block_never_waits() -> None:
    for policy, later in (("continue", False), ("block", True)):
        health = conditions.DeadLetterHealth(policy, recheck_s=30)  # type: ignore[arg-type]
        health.attempted(100)
        health.failed("unknown_topic", 100)
        assert health.should_attempt(110) is later
        assert health.should_attempt(130)


def test_ready_names_what_is_wrong() -> None:
    state = conditions.State(joined=True)
    assert all(state.checks().values())
    assert state.problems() == {}
    state.stalled = ["fleet.alerts:1"]
    state.dead_letters.failed("too_large", 0)
    assert state.checks() == {
        "joined": True,
        "running": True,
        "flowing": False,
        "dead_letters": False,
    }
    assert state.problems() == {"stalled": ["fleet.alerts:1"], "dead_letter_topic": "too_large"}
