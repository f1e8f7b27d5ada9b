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
