"""The canary: a token the gateway publishes to itself through Redis, expected back in time.

It proves the whole path a client's events take (PUBLISH on the commands
connection, delivery on the pub/sub connection, the listener's loop) rather
than any one connection's state. ``/ready`` requires a recent canary; a lost
one (or a PUBLISH that reaches no subscriber: nobody listens on our own
channel, so we are deaf) asks the listener to drop the connection it probed.
A PUBLISH that fails proves nothing about the pub/sub connection (the
commands connection may be the one that broke): /ready stays false and the
probe is tried again shortly, but nothing is dropped.
The probe names that connection's generation: a probe begun before a
reconnection never condemns the connection that replaced the one it probed.

Behind a burst the canary comes back once the burst is handled (pub/sub
delivers in order); while the listener keeps handling messages the wait goes
on, up to :data:`BUSY_MAX_S`: dropping the connection then would lose the
rest of the burst.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from typing import Any, Final, Protocol

import structlog

from fleetcast.gateway.metrics import Metrics

log = structlog.stdlib.get_logger(__name__)

#: Longest a canary may wait behind messages the listener is still working
#: through (a burst): meanwhile the connection is busy, not deaf.
BUSY_MAX_S: Final = 30.0
#: After a probe that could not be sent, the next one comes this soon (seconds).
RETRY_S: Final = 0.2

PROVEN, DEAF, UNKNOWN = "proven", "deaf", "unknown"


class Probed(Protocol):
    """What the canary needs of the listener (listener.Listener)."""

    @property
    def connected(self) -> bool: ...

    @property
    def generation(self) -> int: ...

    @property
    def handled(self) -> int: ...

    def reset(self, generation: int, why: BaseException) -> None: ...

    async def changed(self, after: int) -> None: ...


class Echoes:
    """Canary tokens on their way, and the listener's handler for the canary channel."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Future[float]] = {}

    def expect(self, token: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._waiting[token] = future
        return future

    def forget(self, token: str) -> None:
        self._waiting.pop(token, None)

    def back(self, data: bytes) -> None:
        """The canary channel delivered ``data``."""
        future = self._waiting.get(_text(data))
        if future is not None and not future.done():
            future.set_result(time.monotonic())


class Canary:
    """Probes every interval, and at once when the listener has a new connection."""

    def __init__(
        self,
        commands: Any,
        listener: Probed,
        echoes: Echoes,
        metrics: Metrics,
        *,
        channel: str,
        interval_s: float,
        timeout_s: float,
    ) -> None:
        self._commands = commands
        self._listener = listener
        self._echoes = echoes
        self._metrics = metrics
        self.channel = channel
        self._interval = interval_s
        self._timeout = timeout_s
        self._tokens = itertools.count()
        self.ok = False
        self._ok_at = 0.0
        #: The listener connection the last good canary went through.
        self._proved = 0

    @property
    def healthy(self) -> bool:
        """Listener connected and a canary came back recently."""
        fresh = time.monotonic() - self._ok_at < self._interval + 2 * self._timeout
        listener = self._listener
        return listener.connected and self.ok and fresh and self._proved == listener.generation

    async def run(self) -> None:
        """The service: probe until cancelled."""
        listener, probed, wait = self._listener, 0, self._interval
        while True:
            with contextlib.suppress(TimeoutError):  # a new connection is probed at once
                async with asyncio.timeout(wait):
                    await listener.changed(after=probed)
            generation = probed = listener.generation
            outcome = await self._probe()
            if outcome != PROVEN and self.ok:
                log.warning("canary lost", generation=generation, outcome=outcome)
            self.ok = outcome == PROVEN and listener.generation == generation
            self._metrics.canary_ok.set(1 if self.ok else 0)
            wait = self._interval if outcome != UNKNOWN else min(self._interval, RETRY_S)
            if self.ok:
                self._ok_at, self._proved = time.monotonic(), generation
            elif outcome == DEAF:
                self._metrics.canary_failures.inc()
                listener.reset(generation, RuntimeError("canary lost"))

    async def _probe(self) -> str:
        """PROVEN, DEAF (nobody received it, or it never came back) or UNKNOWN (not sent)."""
        if not self._listener.connected:
            return UNKNOWN
        token = str(next(self._tokens))
        future = self._echoes.expect(token)
        started = time.monotonic()
        try:
            try:
                async with asyncio.timeout(self._timeout):
                    receivers = await self._commands.publish(self.channel, token)
            except (Exception, TimeoutError) as exc:  # the commands side failed: no verdict
                log.debug("canary publish failed", error=repr(exc))
                return UNKNOWN
            if not receivers:  # nobody listens on our own channel: we are deaf
                return DEAF
            await self._wait(future, started)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and _cancelling():
                raise
            return DEAF
        finally:
            self._echoes.forget(token)
        self._metrics.canary_rtt.set(time.monotonic() - started)
        return PROVEN

    async def _wait(self, future: asyncio.Future[float], started: float) -> None:
        """Wait for the canary; past the timeout only while the listener keeps handling messages.

        Raises TimeoutError when the listener stalls.
        """
        seen = self._listener.handled
        while True:
            try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                async with asyncio.timeout(self._timeout):
                    await asyncio.shield(future)
                return
            except TimeoutError:
                if self._listener.handled == seen or time.monotonic() - started > BUSY_MAX_S:
                    raise
                seen = self._listener.handled


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
