"""Handshake admission for reconnect storms: a token bucket whose refusals queue.

A lost pod sends its ~10k clients to the others within 1-2 s. The bucket
(``HANDSHAKE_RATE`` per second, ``HANDSHAKE_BURST`` at once) decides who is
admitted now; a plain bucket would then tell every refused client the same
thing ("a token in 2 ms"), and they would all come back together and be
refused together again. So each refusal also books a place in a virtual
queue: the n-th client refused in a burst is told to come back n intervals
later, at a pace a little slower than the bucket refills. The retries arrive
spread out and find a token, and the storm drains at the bucket's rate
instead of bouncing. Pure: the caller passes the monotonic time.

The bucket acts at the Socket.IO CONNECT, after the upgrade work; the
overload guard below refuses new sessions before that work while the event
loop lags (HTTP 503 + Retry-After), so a storm cannot tip the process into
congestion collapse.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final

from aiohttp import web
from aiohttp.typedefs import Handler, Middleware

from fleetcast.gateway.edge.limits import TokenBucket

#: Refused clients are booked at this share of the rate, so tokens accrue a
#: little faster than the booked clients return (small clock and network skew).
BOOKING_SHARE: Final = 0.9
#: No client is told to wait longer than this (seconds); it may retry sooner.
MAX_RETRY_AFTER_S: Final = 30.0


class Admission:
    """``take(now)``: 0.0 when a handshake may proceed, else its retry-after hint (s)."""

    __slots__ = ("_booked_until", "_bucket", "_spacing")

    def __init__(self, rate: float, burst: float, now: float) -> None:
        self._bucket = TokenBucket(rate, burst, now)
        self._spacing = 1.0 / (rate * BOOKING_SHARE)
        self._booked_until = now

    def take(self, now: float) -> float:
        wait = self._bucket.take(now)
        if wait == 0.0:
            return 0.0
        slot = max(self._booked_until, now + wait)
        if slot - now < MAX_RETRY_AFTER_S:
            self._booked_until = slot + self._spacing
        return round(min(slot - now, MAX_RETRY_AFTER_S) + 0.005, 2)


# --- overload: refuse new handshakes before they cost anything --------------------------

#: How often the event loop's lag is sampled (seconds).
LAG_SAMPLE_S: Final = 0.05
#: The lag estimate decays by this factor per sample once the loop is responsive again.
LAG_DECAY: Final = 0.8
#: What an overloaded gateway tells a refused client to wait (seconds, Retry-After).
OVERLOAD_RETRY_S: Final = 1


class LoopLag:
    """How late the event loop runs timers: a gateway's own measure of being overloaded.

    The token bucket above acts at the Socket.IO CONNECT, after the HTTP
    upgrade and the Engine.IO handshake; when thousands of sockets arrive at
    once (a lost pod's clients), that earlier work alone can swamp the
    process, every handshake then takes longer than clients wait, and they
    all retry: congestion collapse. :func:`overload_guard` answers new
    handshakes with a cheap HTTP 503 + Retry-After while the loop lags, so
    the work in hand (admitted clients, their recoveries, deliveries) ends.
    """

    def __init__(self) -> None:
        self.seconds = 0.0

    def observe(self, lateness: float) -> None:
        self.seconds = max(lateness, self.seconds * LAG_DECAY)

    async def run(self) -> None:
        """Sample until cancelled (owned by the app's cleanup context)."""
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + LAG_SAMPLE_S
            await asyncio.sleep(LAG_SAMPLE_S)
            self.observe(max(0.0, loop.time() - due))


def overload_guard(
    lag: LoopLag, ws_path: str, limit_s: float, refused: Callable[[], None]
) -> Middleware:
    """aiohttp middleware: a new Engine.IO session (no ``sid``) is refused while ``lag`` > limit."""
    prefix = ws_path.rstrip("/")

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        if (
            limit_s > 0
            and lag.seconds > limit_s
            and request.path.startswith(prefix)
            and "sid" not in request.query
        ):
            refused()
            return web.Response(
                status=503,
                text="gateway overloaded; retry later",
                headers={"Retry-After": str(OVERLOAD_RETRY_S)},
            )
        return await handler(request)

    return guard
