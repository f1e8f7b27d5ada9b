"""Coalesced reads: at most one read per key in flight, and those who ask meanwhile share the next.

A storm of consoles of one org asking for its snapshot costs a few Redis
reads, not one each. Whoever asks while a read is in flight waits for the
*next* read, which starts when that one ends, so every caller's answer was
read after it asked (it misses nothing published before it joined).

With ``spacing_s``, a key's reads also start at least that far apart: those
who ask within it of the last read share one read at its end. Consoles that
trickle in through a reconnect storm (one every few tens of milliseconds)
would otherwise each cost a read of their own, since each read ends before
the next console asks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Coroutine, Hashable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

log = structlog.stdlib.get_logger(__name__)

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
Spawn = Callable[[Coroutine[Any, Any, Any], str], object]


@dataclass(slots=True)
class _State(Generic[V]):
    running: bool = False
    next: asyncio.Future[V] | None = None


class Coalescer(Generic[K, V]):
    """``await get(key)``: the value of a ``read(key)`` sent after this call."""

    def __init__(
        self,
        read: Callable[[K], Awaitable[V]],
        spawn: Spawn,
        name: str,
        *,
        spacing_s: float = 0.0,
    ) -> None:
        self._read = read
        self._spawn = spawn
        self._name = name
        self._spacing_s = spacing_s
        self._keys: dict[K, _State[V]] = {}
        self.reads = 0

    async def get(self, key: K) -> V:
        """Raises what the read raised (each waiter sees it)."""
        state = self._keys.get(key)
        if state is None:
            state = self._keys[key] = _State()
        if state.next is None:
            state.next = asyncio.get_running_loop().create_future()
            state.next.add_done_callback(_retrieve)
            if not state.running:
                state.running = True
                self._spawn(self._reads(key, state), f"{self._name}-{key}")
        return await asyncio.shield(state.next)

    async def _reads(self, key: K, state: _State[V]) -> None:
        loop = asyncio.get_running_loop()
        try:
            while state.next is not None:
                future, state.next = state.next, None
                started = loop.time()
                self.reads += 1
                try:
                    value = await self._read(key)
                except asyncio.CancelledError:
                    future.cancel()
                    raise
                except Exception as exc:
                    log.warning("read failed", read=self._name, key=str(key), error=repr(exc))
                    future.set_exception(exc)
                else:
                    future.set_result(value)
                # Whoever asks until then shares the next read (still sent after they asked).
                await asyncio.sleep(max(0.0, started + self._spacing_s - loop.time()))
        finally:
            if state.next is not None:
                state.next.cancel()
            state.running = False
            if self._keys.get(key) is state:
                del self._keys[key]


def _retrieve(future: asyncio.Future[Any]) -> None:
    """Mark a failed read's exception as seen even if every waiter went away."""
    if not future.cancelled():
        with contextlib.suppress(Exception):
            future.exception()
