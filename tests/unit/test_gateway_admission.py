"""Handshake admission: the bucket admits, refusals are booked one interval apart."""

from __future__ import annotations

import heapq
import itertools

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from fleetcast.gateway.edge.admission import (
    BOOKING_SHARE,
    MAX_RETRY_AFTER_S,
    Admission,
    LoopLag,
    overload_guard,
)


def test_burst_is_admitted_then_refusals_are_staggered() -> None:
    gate = Admission(rate=100, burst=5, now=0.0)
    assert [gate.take(0.0) for _ in range(5)] == [0.0] * 5
    hints = [gate.take(0.0) for _ in range(4)]
    spacing = 1 / (100 * BOOKING_SHARE)
    assert hints[0] == pytest.approx(0.01 + 0.005, abs=0.006)
    for earlier, later in itertools.pairwise(hints):
        assert later - earlier == pytest.approx(spacing, abs=0.011)


def test_a_storm_that_honours_the_hints_is_refused_at_most_once_each() -> None:
    """5,000 clients at once, each retrying exactly after its hint: every retry is admitted."""
    rate, burst, clients = 500.0, 200, 5000
    gate = Admission(rate, burst, now=0.0)
    arrivals = [(0.0, i) for i in range(clients)]
    heapq.heapify(arrivals)
    refused = [0] * clients
    admitted_at = {}
    while arrivals:
        now, client = heapq.heappop(arrivals)
        hint = gate.take(now)
        if hint == 0.0:
            admitted_at[client] = now
        else:
            refused[client] += 1
            heapq.heappush(arrivals, (now + hint, client))
    assert len(admitted_at) == clients
    assert max(refused) == 1
    last = max(admitted_at.values())
    assert last == pytest.approx((clients - burst) / (rate * BOOKING_SHARE), rel=0.02)


def test_hints_are_capped() -> None:
    gate = Admission(rate=1, burst=1, now=0.0)
    assert gate.take(0.0) == 0.0
    hints = [gate.take(0.0) for _ in range(100)]
    assert max(hints) <= MAX_RETRY_AFTER_S + 0.01
    assert hints[-1] == hints[-2]  # past the cap: no more booking


def test_loop_lag_rises_at_once_and_decays() -> None:
    lag = LoopLag()
    lag.observe(0.5)
    assert lag.seconds == 0.5
    for _ in range(10):
        lag.observe(0.0)
    assert lag.seconds < 0.06


async def test_overload_guard_refuses_new_sessions_only_while_lagging() -> None:
    lag, refused = LoopLag(), []

    async def handler(_request: web.Request) -> web.StreamResponse:
        return web.Response(text="handled")

    guard = overload_guard(lag, "/ws", 0.25, lambda: refused.append(1))
    new_session = make_mocked_request("GET", "/ws/?EIO=4&transport=websocket")
    existing = make_mocked_request("GET", "/ws/?EIO=4&transport=polling&sid=abc")
    assert (await guard(new_session, handler)).status == 200
    lag.observe(1.0)
    response = await guard(new_session, handler)
    assert response.status == 503
    assert response.headers["Retry-After"] == "1"
    assert (await guard(existing, handler)).status == 200  # sessions in progress go on
    assert (await guard(make_mocked_request("GET", "/metrics"), handler)).status == 200
    assert refused == [1]
