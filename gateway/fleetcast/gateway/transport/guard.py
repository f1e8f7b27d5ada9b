"""What one client may send and leave unread, checked before python-socketio sees a packet.

An authenticated client is still untrusted. Measured against the gateway
before these limits: 100,000 ``subscribe`` requests from a client that never
read took the process from 89 to 316 MB, /health to 4-6 s and another org's
alert latency from 0.03 to 3.6 s (every request got a task of its own and
its ack went into a socket buffer nobody drained); a packet announcing 99
million binary attachments held every binary frame that followed; 5,000
malformed packets wrote 5,000 tracebacks. So, per connection:

- requests (Socket.IO events) come at most ``request_rate`` per second
  (``request_burst`` at once), and at most ``max_in_flight`` are handled at a
  time; beyond either the connection is cut off (``too_many_requests``);
- binary packets are refused (no fleetcast client sends attachments:
  ``binary_refused``), before any attachment is buffered;
- a packet python-socketio cannot parse is a protocol error; after
  ``max_protocol_errors`` of them the connection is cut off (``protocol_error``);
- what the client leaves unread (acks and pings included, not only the
  frames the outbox bounds) may not exceed ``max_unsent_bytes``: beyond it
  the client is cut off as a slow consumer (transport/outlet.py measures).

A cut-off is the edge's business (a ``disconnect_reason`` then a close):
this module only decides, counts and logs, at a bounded rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

import structlog

from fleetcast.common.logs import Throttle

log = structlog.stdlib.get_logger(__name__)

#: Socket.IO packet types whose data are binary attachments (BINARY_EVENT, BINARY_ACK).
BINARY_TYPES: Final = ("5", "6")
#: The Socket.IO EVENT packet type (a client request), as the first character of its text.
REQUEST_TYPE: Final = "2"

TOO_MANY_REQUESTS: Final = "too_many_requests"
BINARY_REFUSED: Final = "binary_refused"
PROTOCOL_ERROR: Final = "protocol_error"
SLOW_CONSUMER: Final = "slow_consumer"


@dataclass(frozen=True, slots=True)
class Limits:
    """Per-connection bounds (settings: FLEETCAST_REQUEST_RATE and the rest)."""

    request_rate: float = 20.0
    request_burst: int = 100
    max_in_flight: int = 16
    max_protocol_errors: int = 3
    max_unsent_bytes: int = 1024 * 1024


class Guard:
    """One connection's budget: a token bucket, requests in flight, protocol errors."""

    __slots__ = ("_stamp", "_tokens", "errors", "in_flight", "tripped")

    def __init__(self, limits: Limits, now: float) -> None:
        self._tokens = float(limits.request_burst)
        self._stamp = now
        self.in_flight = 0
        self.errors = 0
        #: The code it was cut off for, once it was (nothing it sends counts after).
        self.tripped: str | None = None

    def take(self, limits: Limits, now: float) -> bool:
        """One request's token, if there is one."""
        self._tokens = min(
            float(limits.request_burst), self._tokens + (now - self._stamp) * limits.request_rate
        )
        self._stamp = now
        if self._tokens < 1.0:
            return False
        self._tokens -= 1.0
        return True


#: Told ``(eio_sid, code)`` when a connection must be cut off.
OnViolation = Callable[[str, str], None]


class Guards:
    """Applies :class:`Limits` to every connection; tells ``on_violation`` who must go."""

    def __init__(
        self,
        limits: Limits,
        on_violation: OnViolation,
        *,
        count: Callable[[str], None] = lambda code: None,
        count_error: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limits = limits
        self._on_violation = on_violation
        self._count = count
        self._count_error = count_error
        self._clock = clock
        self._throttle = Throttle()

    def new(self) -> Guard:
        return Guard(self.limits, self._clock())

    def admit(self, eio_sid: str, guard: Guard, data: Any) -> bool:
        """May this Engine.IO message go on to python-socketio? (False: dropped, maybe cut off)."""
        if guard.tripped is not None:
            return False
        if isinstance(data, bytes) or (isinstance(data, str) and data[:1] in BINARY_TYPES):
            self.violation(eio_sid, guard, BINARY_REFUSED)
            return False
        if isinstance(data, str) and data[:1] == REQUEST_TYPE:
            if not guard.take(self.limits, self._clock()):
                self.violation(eio_sid, guard, TOO_MANY_REQUESTS, "request rate")
                return False
            if guard.in_flight >= self.limits.max_in_flight:
                self.violation(eio_sid, guard, TOO_MANY_REQUESTS, "requests in flight")
                return False
            guard.in_flight += 1  # until python-socketio has handled it (engine.LeanSocketIO)
        return True

    def protocol_error(self, eio_sid: str, guard: Guard, error: BaseException) -> None:
        """A packet that could not be read; the connection goes after a few."""
        guard.errors += 1
        self._count_error()
        self._log(PROTOCOL_ERROR, eio_sid, repr(error)[:200])
        if guard.errors >= self.limits.max_protocol_errors:
            self.violation(eio_sid, guard, PROTOCOL_ERROR, f"{guard.errors} unreadable packets")

    def violation(self, eio_sid: str, guard: Guard, code: str, detail: str = "") -> None:
        """Cut the connection off for ``code`` (once)."""
        if guard.tripped is not None:
            return
        guard.tripped = code
        self._count(code)
        if code != PROTOCOL_ERROR:  # its packets were logged already
            self._log(code, eio_sid, detail)
        self._on_violation(eio_sid, code)

    def _log(self, code: str, eio_sid: str, detail: str) -> None:
        quiet = self._throttle.allow(code)
        if quiet is not None:
            log.warning("client broke a limit", code=code, eio_sid=eio_sid, detail=detail,
                        similar_not_logged=quiet)  # fmt: skip
