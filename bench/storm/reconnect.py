"""Where and when resuming clients (re)connect: what a Service and socket.io-client do.

Shared by the ``storm-pod`` storm (every client of A onto B) and the
``city-storm`` scenario (half a city's clients onto the other gateway while
the load runs). Each client has a port; :meth:`Reconnector.move` points some
of them at another gateway, as a Service does when a pod's endpoints go. A
lost connection is retried after socket.io-client's backoff, a
``rate_limited`` refusal after its ``retry_after``. Every timer and task it
starts is its own and ends with :meth:`Reconnector.close`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable, Collection, Sequence
from typing import Any

from bench import stats
from bench.loadgen.backoff import Backoff
from bench.storm.client import ResumingClient

HOST = "127.0.0.1"
#: An attempt that has not produced a session by then is dropped and retried.
ATTEMPT_TIMEOUT_S = 20.0
#: Attempts per client while the clients are first connected (before any kill).
CONNECT_TRIES = 5


class Reconnector:
    """Connects ``clients`` to their ports and brings them back when they lose them."""

    def __init__(
        self,
        clients: Sequence[ResumingClient],
        backoff: Backoff,
        *,
        concurrency: int = 200,
        seed: int = 1,
    ) -> None:
        self.clients = list(clients)
        self.backoff = backoff
        self.concurrency = concurrency
        self.ports: dict[int, int] = {}
        self.connect_failures = 0
        #: Seconds from :meth:`move` until each moved client had a session again.
        self.back_after: dict[int, float] = {}
        self._rng = random.Random(seed)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._timers: set[asyncio.TimerHandle] = set()
        self._moved_at = 0.0
        self._moving: frozenset[int] = frozenset()
        self._all_back = asyncio.Event()
        #: Failed attempts of each client since it lost its connection (its backoff).
        self._failures: dict[int, int] = {}
        for client in self.clients:
            client.on_ready = self._ready
            client.on_lost = self._lost
            client.on_refused = self._refused
            client.on_failed = self._failed

    async def connect(self, within_s: float) -> int:
        """Connect every client to its port; returns how many have a session."""
        gate = asyncio.Semaphore(self.concurrency)

        async def one(client: ResumingClient) -> None:
            # A loaded gateway may refuse or drop a first attempt (503 while its
            # loop lags): retry, as a real client would, until ``within_s``.
            async with gate:
                for _ in range(CONNECT_TRIES):
                    await self._attempt(client)
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
                            await client.session.wait()
                    if client.ready:
                        return
                    await asyncio.sleep(self.backoff.delay(0, self._rng))

        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await asyncio.gather(*(one(c) for c in self.clients))
        return sum(c.ready for c in self.clients)

    def move(self, indices: Collection[int], port: int) -> None:
        """From now on these clients reconnect to ``port`` (call it just before the kill)."""
        for index in indices:
            self.ports[index] = port
        self._moving = frozenset(i for i in indices if self.clients[i].ready)
        self._moved_at = time.monotonic()
        self._all_back.clear()

    async def all_back(self, within_s: float) -> bool:
        """Wait until every moved client that had a session has one again (bounded)."""
        if len(self.back_after) >= len(self._moving):
            return True
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within_s):
                await self._all_back.wait()
        return self._all_back.is_set()

    def time_to(
        self, shares: Sequence[int] = (50, 99, 100), among: Collection[int] | None = None
    ) -> dict[str, float | None]:
        """Seconds from the move until that share of the moved clients (``among`` them) was back."""
        moving = self._moving if among is None else self._moving & frozenset(among)
        times = sorted(t for i, t in self.back_after.items() if i in moving)
        return stats.times_to_shares(times, len(moving), shares)

    @property
    def moved(self) -> int:
        return len(self._moving)

    async def close(self) -> None:
        for timer in self._timers:
            timer.cancel()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for client in self.clients:
            client.on_lost = client.on_failed = _ignore
            client.abort()

    # --- attempts ------------------------------------------------------------------------

    async def _attempt(self, client: ResumingClient) -> None:
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(ATTEMPT_TIMEOUT_S):
                await loop.create_connection(lambda: client, HOST, self.ports[client.index])
        except (OSError, TimeoutError) as exc:
            client.errors.append(f"connect:{type(exc).__name__}")
            self._failed(client, "connect")
            return
        self._later(ATTEMPT_TIMEOUT_S, self._expire, client)

    def _expire(self, client: ResumingClient) -> None:
        if not client.ready:
            client.errors.append("timeout")
            client.abort()  # on_failed follows from connection_lost

    def _start(self, client: ResumingClient) -> None:
        task = asyncio.get_running_loop().create_task(self._attempt(client))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _later(self, delay: float, callback: Callable[..., None], *args: Any) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def fire() -> None:
            self._timers.discard(handle)
            callback(*args)

        handle = loop.call_later(delay, fire)
        self._timers.add(handle)

    # --- client callbacks ----------------------------------------------------------------

    def _ready(self, client: ResumingClient) -> None:
        index = client.index
        if index in self._moving and index not in self.back_after:
            self.back_after[index] = time.monotonic() - self._moved_at
            if len(self.back_after) >= len(self._moving):
                self._all_back.set()

    def _lost(self, client: ResumingClient) -> None:
        self._failures[client.index] = 0
        self._later(self.backoff.delay(0, self._rng), self._start, client)

    def _refused(self, client: ResumingClient, retry_after: float) -> None:
        self._later(retry_after, self._start, client)

    def _failed(self, client: ResumingClient, error: str) -> None:
        self.connect_failures += 1
        if self._moved_at:  # after the kill: retry as socket.io-client would
            failures = self._failures[client.index] = self._failures.get(client.index, 0) + 1
            self._later(self.backoff.delay(failures, self._rng), self._start, client)


def _ignore(*_: object) -> None:
    return None
