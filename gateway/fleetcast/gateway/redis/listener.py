"""The gateway's one Redis pub/sub connection: org channels by reference count, read in bulk.

The gateway SUBSCRIBEs to an org's channel when the first local client of
that org connects and UNSUBSCRIBEs when the last one leaves (book.py), so
its Redis ingress grows with the orgs it serves, not with total traffic.

No deaf gateway: the listener owns one pub/sub connection at a time (a
*generation*); on any error it drops it, reconnects with backoff and
subscribes again to every org still wanted (redis-py's own silent
resubscribe is not trusted). The canary (canary.py) proves each generation
end to end and asks for a fresh one when it is lost; a request about an
older generation is ignored, so a canary that failed while Redis was away
never tears down the connection that replaced it. Every new generation is
announced (``on_connected``): sessions are rewritten and the orgs' gaps
recovered (rooms/recovery.py).

I/O goes through three small hooks (:meth:`Listener._connect`,
:meth:`Listener._subscribe`, :meth:`Listener._unsubscribe`) and the reader,
so the bookkeeping is tested without Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Any, Final

import structlog

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.redis.book import SubscriptionBook
from fleetcast.gateway.transport.pushes import PushReader
from fleetcast.protocol import keys

log = structlog.stdlib.get_logger(__name__)

BACKOFF_MIN_S: Final = 0.1
#: Longest wait for a SUBSCRIBE confirmation before a connect goes on anyway.
CONFIRM_WAIT_S: Final = 2.0
#: Read timeout of the listener loop; bounds how long a reset request waits.
LISTEN_TICK_S: Final = 0.5

#: Takes the raw messages of an org channel: (org, data).
EventSink = Callable[[str, bytes], None]
#: Takes the messages of one of the listener's own channels (the canary's).
ChannelHandler = Callable[[bytes], None]
#: Told the generation of each new connection, once it has subscribed.
OnConnected = Callable[[int], None]
#: Told an org whose channel is now listened to, or no longer wanted.
OnOrg = Callable[[str], None]
#: Held around the messages a burst brings after its first (transport.corked:
#: frames to one client go out in one write).
Batch = Callable[[], AbstractContextManager[None]]


class Listener:
    """Ref-counted org subscriptions on one pub/sub connection at a time.

    Classic pub/sub (SUBSCRIBE, ``message`` pushes) on one Redis; on a cluster,
    shards.py runs one :class:`ShardListener` (sharded pub/sub) per shard.
    """

    #: The push type of a delivered message, and of a subscription's confirmation.
    MESSAGE: bytes = b"message"
    SUBSCRIBED: str = "subscribe"

    def __init__(
        self,
        client: Any,
        metrics: Metrics,
        *,
        sink: EventSink,
        channels: Mapping[str, ChannelHandler],
        backoff_max_s: float,
        batch: Batch = contextlib.nullcontext,
        on_connected: Sequence[OnConnected] = (),
        on_subscribed: Sequence[OnOrg] = (),
        on_unsubscribed: Sequence[OnOrg] = (),
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._sink = sink
        self._own = dict(channels)
        self._backoff_max = backoff_max_s
        self._batch = batch
        self._on_connected = tuple(on_connected)
        self._on_subscribed = tuple(on_subscribed)
        self._on_unsubscribed = tuple(on_unsubscribed)
        self.book = SubscriptionBook()
        self._confirm: dict[str, asyncio.Future[bool]] = {}
        self._lock = asyncio.Lock()
        self._pubsub: Any = None
        self._reset = False
        self._changed = asyncio.Event()
        self.connected = False
        #: Bumped for every new connection; the canary names the one it proved.
        self.generation = 0
        #: Messages handled so far: a canary late behind a busy listener is not lost.
        self.handled = 0

    @property
    def orgs(self) -> list[str]:
        return self.book.orgs

    async def changed(self, after: int) -> None:
        """Return once a connection newer than generation ``after`` is up."""
        while self.generation <= after:
            self._changed.clear()
            await self._changed.wait()

    # --- reference counting (the edge's OrgFeeds) -----------------------------------

    async def acquire(self, org: str) -> None:
        """One more local client of ``org``; returns once Redis confirmed the subscription."""
        channel = keys.org_channel(org)
        first = self.book.want(org)
        if first:
            async with self._lock:
                pubsub = self._pubsub
                if (
                    not self.connected
                    or not self.book.wants(org)
                    or channel in self.book.subscribed
                ):
                    return
                self._confirm[channel] = asyncio.get_running_loop().create_future()
                try:
                    await self._subscribe(pubsub, [channel])
                except Exception as exc:
                    self._reset_connection(pubsub, exc)
                    return
                self.book.subscribed.add(channel)
                self._count_orgs()
        pending = self._confirm.get(channel)
        if pending is not None:
            try:
                async with asyncio.timeout(CONFIRM_WAIT_S):
                    await asyncio.shield(pending)
            except TimeoutError:
                pass
            except asyncio.CancelledError:
                if not pending.cancelled():  # we were cancelled, not the confirmation
                    raise
        if first and self.connected and channel in self.book.subscribed:
            for callback in self._on_subscribed:  # confirmed (or long sent): count from now
                callback(org)

    async def release(self, org: str) -> None:
        """One local client of ``org`` fewer; the last one unsubscribes."""
        if not self.book.unwant(org):
            return
        for callback in self._on_unsubscribed:
            callback(org)
        channel = keys.org_channel(org)
        async with self._lock:
            pubsub = self._pubsub
            if self.book.wants(org) or not self.connected or channel not in self.book.subscribed:
                return
            self.book.subscribed.discard(channel)
            self._count_orgs()
            try:
                await self._unsubscribe(pubsub, [channel])
            except Exception as exc:
                self._reset_connection(pubsub, exc)

    async def confirmed(self, org: str) -> None:
        """Return once the org's pending subscription is confirmed (or given up on)."""
        pending = self._confirm.get(keys.org_channel(org))
        if pending is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                async with asyncio.timeout(CONFIRM_WAIT_S):
                    await asyncio.shield(pending)

    async def carry(self, channel: str, handler: ChannelHandler) -> None:
        """Listen to one more channel of our own (the control channel moving shards)."""
        async with self._lock:
            self._own[channel] = handler
            if not self.connected or channel in self.book.subscribed:
                return
            try:
                await self._subscribe(self._pubsub, [channel])
            except Exception as exc:
                self._reset_connection(self._pubsub, exc)
                return
            self.book.subscribed.add(channel)

    async def drop(self, channel: str) -> None:
        """Stop listening to a channel of our own."""
        async with self._lock:
            self._own.pop(channel, None)
            if not self.connected or channel not in self.book.subscribed:
                return
            self.book.subscribed.discard(channel)
            try:
                await self._unsubscribe(self._pubsub, [channel])
            except Exception as exc:
                self._reset_connection(self._pubsub, exc)

    def reset(self, generation: int, why: BaseException) -> None:
        """Drop the connection of ``generation`` (if it is still the current one)."""
        if generation == self.generation and self.connected:
            self._reset_connection(self._pubsub, why)

    def _reset_connection(self, pubsub: Any, exc: BaseException | None = None) -> None:
        if pubsub is not None and pubsub is self._pubsub:
            log.warning("pub/sub reset requested", error=repr(exc))
            self._reset = True

    def _count_orgs(self) -> None:
        self._metrics.subscribed_orgs.set(self.book.org_channels_held())

    # --- the service -------------------------------------------------------------------

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
            channels = [*self._own, *self.book.channels()]
            pubsub = await self._connect(channels)
            self._pubsub, self._reset = pubsub, False
            self.book.subscribed = set(channels)
            self.generation += 1
            self.connected = True
        self._count_orgs()
        self._metrics.redis_connected.set(1)
        self._metrics.redis_reconnects.inc()
        log.info("redis pub/sub connected", orgs=len(channels) - len(self._own))
        self._changed.set()
        for org in self.book.orgs:
            for on_org in self._on_subscribed:
                on_org(org)
        for callback in self._on_connected:
            callback(self.generation)

    async def _listen(self) -> None:
        """Handle the replies as they arrive; those that arrived together as one batch.

        Under the batch (the transport's cork) each client gets one write for
        all of them, not one per event.
        """
        pubsub, reader = self._pubsub, self._reader(self._pubsub)
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
        self.handled += 1
        if reply[0] == self.MESSAGE:  # the hot path
            self._on_message(_text(reply[1]), reply[2])
        else:  # (un)subscribe confirmations: redis-py keeps its channel book with them
            message = await pubsub.handle_message(reply)
            if message is not None and message.get("type") == self.SUBSCRIBED:
                self._confirmed(_text(message.get("channel")))
            elif message is not None:
                self._other(message)

    def _other(self, message: Mapping[str, Any]) -> None:
        """A push other than a message or a confirmation (shards.py watches sunsubscribe)."""

    def _on_message(self, channel: str, data: bytes) -> None:
        org = keys.org_of_channel(channel)
        if org is not None:
            self._metrics.redis_messages.labels(org).inc()
            self._sink(org, data or b"")
            return
        handler = self._own.get(channel)
        if handler is not None:
            handler(data)

    def _confirmed(self, channel: str) -> None:
        future = self._confirm.pop(channel, None)
        if future is not None and not future.done():
            future.set_result(True)

    async def _close(self) -> None:
        self.connected = False
        self._metrics.redis_connected.set(0)
        pubsub, self._pubsub = self._pubsub, None
        self.book.subscribed = set()
        for future in self._confirm.values():
            if not future.done():
                future.cancel()
        self._confirm.clear()
        if pubsub is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await pubsub.aclose()

    # --- I/O hooks -------------------------------------------------------------------------

    async def _connect(self, channels: Sequence[str]) -> Any:
        """A new pub/sub connection subscribed to ``channels`` (redis-py connects on SUBSCRIBE)."""
        pubsub = self._client.pubsub()
        try:
            await pubsub.subscribe(*channels)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        return pubsub

    async def _subscribe(self, pubsub: Any, channels: Sequence[str]) -> None:
        await pubsub.subscribe(*channels)

    async def _unsubscribe(self, pubsub: Any, channels: Sequence[str]) -> None:
        await pubsub.unsubscribe(*channels)

    def _reader(self, pubsub: Any) -> PushReader:
        return PushReader.of(pubsub)


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    return "" if value is None else str(value)
