"""Token buckets (fleetcast.gateway.edge.limits) on a driven clock."""

from __future__ import annotations

import pytest

from fleetcast.gateway.edge.limits import TokenBucket


def test_burst_then_rate() -> None:
    bucket = TokenBucket(rate=2.0, burst=3, now=0.0)
    assert [bucket.take(0.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(0.0) == pytest.approx(0.5)
    assert bucket.take(0.5) == 0.0
    assert bucket.take(0.5) == pytest.approx(0.5)


def test_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket(rate=10.0, burst=2, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert [bucket.take(100.0) for _ in range(3)][:2] == [0.0, 0.0]
    assert bucket.take(100.0) > 0


def test_clock_going_backwards_does_not_mint_tokens() -> None:
    bucket = TokenBucket(rate=1.0, burst=1, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) > 0


def test_invalid_parameters() -> None:
    with pytest.raises(ValueError, match="rate"):
        TokenBucket(rate=0, burst=1, now=0)


def test_a_drain_hands_clients_over_at_its_rate_and_never_overruns_its_time() -> None:
    from fleetcast.gateway.edge.closing import drain_due

    assert drain_due(1000, 0, rate=100, elapsed=0.0, spread=5) == 1  # one at once
    assert drain_due(1000, 1, rate=100, elapsed=0.5, spread=5) == 51
    assert drain_due(1000, 51, rate=100, elapsed=0.505, spread=5) == 51  # the rate, not faster
    assert drain_due(1000, 400, rate=100, elapsed=5.0, spread=5) == 1000  # time is up: the rest
    assert drain_due(10, 0, rate=0, elapsed=0.0, spread=5) == 10
