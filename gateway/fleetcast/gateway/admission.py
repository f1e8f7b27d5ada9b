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
"""

from __future__ import annotations

from typing import Final

from fleetcast.gateway.limits import TokenBucket

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
