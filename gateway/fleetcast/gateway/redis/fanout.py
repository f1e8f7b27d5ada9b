"""Per-org Redis pub/sub subscriber: what this gateway's clients need, nothing more.

The gateway SUBSCRIBEs to an org's channel when the first local client of
that org connects and UNSUBSCRIBEs when the last one leaves, so its Redis
ingress grows with the orgs it serves, not with total traffic.

No deaf gateway: the listener owns one pub/sub connection; on any error it
drops it, reconnects with backoff and re-subscribes to every org still
wanted (redis-py's own silent resubscribe is not trusted). A canary, a
message published to this gateway's own channel and expected back within a
timeout, proves the whole path end to end; :attr:`Fanout.healthy` (and so
/ready) requires it, and a lost canary forces a fresh connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections import Counter
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Final

import structlog

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.transport.pushes import PushReader
from fleetcast.protocol import keys, wire

log = structlog.stdlib.get_logger(__name__)

BACKOFF_MIN_S: Final = 0.2
#: Longest wait for a SUBSCRIBE confirmation before a connect goes on anyway.
CONFIRM_WAIT_S: Final = 2.0
#: Read timeout of the listener loop; bounds how long a reset request waits.
LISTEN_TICK_S: Final = 0.5
#: Longest a canary may wait behind messages the listener is still working
#: through (a burst): meanwhile the connection is busy, not deaf.
CANARY_BUSY_MAX_S: Final = 30.0

EventSink = Callable[[str, wire.RoutedEvent], Any]
#: Held around the messages a burst brings after its first (transport.corked:
#: frames to one client go out in one write).
Batch = Callable[[], AbstractContextManager[None]]


class Fanout:
    """Ref-counted org subscriptions on one pub/sub connection, plus the canary."""

    def __init__(
        self,
        pubsub_client: Any,
        commands: Any,
        metrics: Metrics,
        *,
        gateway_id: str,
        sink: EventSink,
        backoff_max_s: float,
        canary_interval_s: float,
        canary_timeout_s: float,
        batch: Batch = contextlib.nullcontext,
    ) -> None:
        self._client = pubsub_client
        self._batch = batch
        self._commands = commands
        self._metrics = metrics
        self._sink = sink
        self._backoff_max = backoff_max_s
        self._canary_interval = canary_interval_s
        self._canary_timeout = canary_timeout_s
        self.canary_channel = keys.canary_channel(gateway_id)
        self._prefix = keys.org_channel("")
        self._wanted: Counter[str] = Counter()
        self._subscribed: set[str] = set()
        self._confirm: dict[str, asyncio.Future[bool]] = {}
        self._canaries: dict[str, asyncio.Future[float]] = {}
        self._tokens = itertools.count()
        self._lock = asyncio.Lock()
        self._pubsub: Any = None
        self._reset = False
        self._kick = asyncio.Event()
        self._on_connected: list[Callable[[], None]] = []
        self.connected = False
        self.canary_ok = False
        self._canary_at = 0.0
        #: Messages the listener has handled: a canary late behind a busy listener is not lost.
        self._handled = 0

    # --- state seen by /ready, /stats and tests -----------------------------------

    @property
    def healthy(self) -> bool:
        """Listener connected and a canary came back recently."""
        fresh = (
            time.monotonic() - self._canary_at < self._canary_interval + 2 * self._canary_timeout
        )
        return self.connected and self.canary_ok and fresh

    @property
    def orgs(self) -> list[str]:
        return sorted(self._wanted)

    def on_connected(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` after every (re)connection, e.g. to restore sessions."""
        self._on_connected.append(callback)

    # --- ref-counting -------------------------------------------------------------

    async def acquire(self, org: str) -> None:
        """One more local client of ``org``; returns once Redis confirmed the subscription."""
        self._wanted[org] += 1
        channel = keys.org_channel(org)
        if self._wanted[org] == 1:
            async with self._lock:
                pubsub = self._pubsub
                if not self.connected or org not in self._wanted or channel in self._subscribed:
                    return
                self._confirm[channel] = asyncio.get_running_loop().create_future()
                try:
                    await pubsub.subscribe(channel)
                except Exception as exc:
                    self._request_reset(pubsub, exc)
                    return
                self._subscribed.add(channel)
                self._count_orgs()
        pending = self._confirm.get(channel)
        if pending is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(pending), CONFIRM_WAIT_S)

    async def release(self, org: str) -> None:
        """One local client of ``org`` fewer; the last one unsubscribes."""
        if self._wanted[org] > 1:
            self._wanted[org] -= 1
            return
        self._wanted.pop(org, None)
        channel = keys.org_channel(org)
        async with self._lock:
            pubsub = self._pubsub
            if org in self._wanted or not self.connected or channel not in self._subscribed:
                return
            self._subscribed.discard(channel)
            self._count_orgs()
            try:
                await pubsub.unsubscribe(channel)
            except Exception as exc:
                self._request_reset(pubsub, exc)

    def _count_orgs(self) -> None:
        self._metrics.subscribed_orgs.set(len(self._subscribed - {self.canary_channel}))

    def _request_reset(self, pubsub: Any, exc: BaseException | None = None) -> None:
        if pubsub is not None and pubsub is self._pubsub:
            log.warning("pub/sub reset requested", error=repr(exc))
            self._reset = True

    # --- the listener ---------------------------------------------------------------

    async def run(self) -> None:
        """Listen until cancelled; reconnect with backoff after any failure."""
        delay, failures = BACKOFF_MIN_S, 0
        while True:
            try:
                await self._open()
                delay, failures = BACKOFF_MIN_S, 0
                await self._listen()
            except Exception as exc:  # any Redis or redis-py failure: start over
                failures += 1
                # one warning per outage, not one per attempt
                (log.warning if failures == 1 else log.debug)("redis pub/sub down", error=repr(exc))
            finally:
                await self._close()
            await asyncio.sleep(delay * random.uniform(0.75, 1.25))
            delay = min(delay * 2, self._backoff_max)

    async def _open(self) -> None:
        async with self._lock:
            pubsub = self._client.pubsub()
            channels = [self.canary_channel, *(keys.org_channel(org) for org in self._wanted)]
            try:
                await pubsub.subscribe(*channels)
            except BaseException:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            self._pubsub, self._reset = pubsub, False
            self._subscribed = set(channels)
            self.connected = True
        self._count_orgs()
        self._metrics.redis_connected.set(1)
        self._metrics.redis_reconnects.inc()
        log.info("redis pub/sub connected", orgs=len(channels) - 1)
        self._kick.set()
        for callback in self._on_connected:
            callback()

    async def _listen(self) -> None:
        """Handle the replies as they arrive; those that arrived together as one batch.

        Under the batch (the transport's cork) each client gets one write for
        all of them, not one per event. Reading is :class:`PushReader`'s: one
        socket read for many messages instead of redis-py's ``get_message``
        per message (~70 µs each).
        """
        pubsub, reader = self._pubsub, PushReader.of(self._pubsub)
        while not self._reset:
            replies = await reader.read(LISTEN_TICK_S)
            if len(replies) == 1:
                await self._take(pubsub, replies[0])
            elif replies:
                with self._batch():
                    for reply in replies:
                        await self._take(pubsub, reply)
            await asyncio.sleep(0)  # other tasks run between batches

    async def _take(self, pubsub: Any, reply: Any) -> None:
        self._handled += 1
        if reply[0] == b"message":  # the hot path: build the dict redis-py would
            self._on_message({"type": "message", "channel": reply[1], "data": reply[2]})
        else:  # (un)subscribe confirmations: redis-py keeps its channel book with them
            message = await pubsub.handle_message(reply)
            if message is not None:
                self._on_message(message)

    async def _close(self) -> None:
        self.connected = self.canary_ok = False
        self._metrics.redis_connected.set(0)
        self._metrics.canary_ok.set(0)
        pubsub, self._pubsub = self._pubsub, None
        self._subscribed = set()
        futures: list[asyncio.Future[Any]] = [*self._confirm.values(), *self._canaries.values()]
        for future in futures:
            if not future.done():
                future.cancel()
        self._confirm.clear()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(pubsub.aclose(), 1.0)

    def _on_message(self, message: dict[str, Any]) -> None:
        kind, channel = message.get("type"), _text(message.get("channel"))
        if kind == "subscribe":
            future = self._confirm.pop(channel, None)
            if future is not None and not future.done():
                future.set_result(True)
        elif kind == "message":
            if channel == self.canary_channel:
                self._canary_back(_text(message.get("data")))
            elif channel.startswith(self._prefix):
                self._on_event_message(channel[len(self._prefix) :], message.get("data") or b"")

    def _on_event_message(self, org: str, data: bytes) -> None:
        self._metrics.redis_messages.labels(org).inc()
        try:
            message_org, batch = wire.decode(data)
        except wire.WireError as exc:
            self._metrics.wire_errors.inc()
            log.warning("unreadable pub/sub message", org=org, error=str(exc))
            return
        if message_org != org:
            self._metrics.wire_errors.inc()
            log.warning("message of another org dropped", org=org, message_org=message_org)
            return
        for routed in batch:
            try:
                self._sink(org, routed)
            except Exception:  # one bad event never stops the listener
                self._metrics.wire_errors.inc()
                log.exception("delivery failed", org=org)

    # --- the canary -------------------------------------------------------------------

    async def run_canary(self) -> None:
        """Probe every interval, and at once after each (re)connection."""
        while True:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a
            # cancellation that lands as the timeout fires, and this loop would
            # then outlive the app's shutdown.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._canary_interval):
                    await self._kick.wait()
            self._kick.clear()
            ok = await self._probe()
            if not ok and self.canary_ok:
                log.warning("canary lost")
            self.canary_ok = ok
            self._metrics.canary_ok.set(1 if ok else 0)
            if ok:
                self._canary_at = time.monotonic()
            else:
                self._metrics.canary_failures.inc()
                self._request_reset(self._pubsub, RuntimeError("canary lost"))

    async def _probe(self) -> bool:
        if not self.connected:
            return False
        token = str(next(self._tokens))
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self._canaries[token] = future
        started = time.monotonic()
        try:
            async with asyncio.timeout(self._canary_timeout):
                receivers = await self._commands.publish(self.canary_channel, token)
                if not receivers:  # nobody listens on our own channel: we are deaf
                    return False
            await self._canary_wait(future, started)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if isinstance(exc, asyncio.CancelledError) and _cancelling():
                raise
            return False
        except Exception as exc:
            log.debug("canary publish failed", error=repr(exc))
            return False
        finally:
            self._canaries.pop(token, None)
        self._metrics.canary_rtt.set(time.monotonic() - started)
        return True

    async def _canary_wait(self, future: asyncio.Future[float], started: float) -> None:
        """Wait for the canary; past the timeout only while the listener keeps handling messages.

        Pub/sub delivers in order, so behind a burst the canary comes back
        once the burst is handled; dropping the connection then would lose
        the rest of the burst. Raises TimeoutError when the listener stalls.
        """
        seen = self._handled
        while True:
            try:  # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation
                async with asyncio.timeout(self._canary_timeout):
                    await asyncio.shield(future)
                return
            except TimeoutError:
                if self._handled == seen or time.monotonic() - started > CANARY_BUSY_MAX_S:
                    raise
                seen = self._handled

    def _canary_back(self, token: str) -> None:
        future = self._canaries.get(token)
        if future is not None and not future.done():
            future.set_result(time.monotonic())


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)


def _cancelling() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
