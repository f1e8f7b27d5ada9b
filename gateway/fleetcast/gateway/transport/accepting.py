"""Accepting TCP connections ourselves, so an overloaded gateway can stop accepting for a while.

A lost pod's clients (10,000 in a large city) all arrive within about a
second. Whatever answers them costs CPU: a ``rate_limited`` refusal at the
Socket.IO CONNECT costs the upgrade and the Engine.IO open, an HTTP 503 from
the overload guard costs the HTTP parse and a response. A connection that is
not accepted costs nothing: it waits in the kernel's listen backlog (the
kernel completes its TCP handshake), and once the backlog is full the
kernel drops further SYNs and the clients' TCP retransmits them (1 s, 3 s,
7 s later) without any of our CPU. So while the event loop lags past the
overload threshold the :class:`Gate` is shut: the listening socket leaves
the loop's readers, and comes back when the loop has caught up.

The loop's own server (uvloop's ``create_server``) cannot pause accepting,
so :class:`GatedSite` owns the listening socket: ``loop.add_reader`` on it,
``accept()`` until it would block, ``loop.connect_accepted_socket`` for each
connection with aiohttp's protocol factory (all public asyncio/aiohttp APIs,
``web.BaseSite`` is aiohttp's documented base for custom sites).
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any, Final

import structlog
from aiohttp import web

log = structlog.stdlib.get_logger(__name__)

#: Connections accepted per readiness callback: others wait for the next loop turn,
#: so a burst of arrivals cannot hold the loop in accept() alone.
ACCEPTS_PER_TURN: Final = 64


class Gate:
    """Whether the gateway takes new TCP connections now; the sites it governs follow it."""

    def __init__(self) -> None:
        self.open = True
        self.pauses = 0
        self._sites: list[GatedSite] = []

    def attach(self, site: GatedSite) -> None:
        self._sites.append(site)

    def detach(self, site: GatedSite) -> None:
        if site in self._sites:
            self._sites.remove(site)

    def set(self, open_: bool) -> None:
        """Open or shut the gate (a no-op when it already is)."""
        if open_ == self.open:
            return
        self.open = open_
        if not open_:
            self.pauses += 1
        for site in self._sites:
            site.follow(open_)


class GatedSite(web.BaseSite):
    """An aiohttp site on a TCP socket of our own, accepting only while its gate is open."""

    __slots__ = ("_accepting", "_gate", "_host", "_port", "_sock", "_tasks")

    def __init__(
        self, runner: web.BaseRunner, gate: Gate, host: str, port: int, *, backlog: int = 128
    ) -> None:
        super().__init__(runner, backlog=backlog)
        self._gate = gate
        self._host, self._port = host, port
        self._sock: socket.socket | None = None
        self._accepting = False
        self._tasks: set[asyncio.Task[Any]] = set()

    @property
    def name(self) -> str:
        return f"http://{self._host}:{self.port}"

    @property
    def port(self) -> int:
        return self._sock.getsockname()[1] if self._sock is not None else self._port

    async def start(self) -> None:
        await super().start()
        sock = socket.create_server(
            (self._host, self._port), backlog=self._backlog, reuse_port=False
        )
        sock.setblocking(False)
        self._sock = sock
        self._gate.attach(self)
        self.follow(self._gate.open)

    async def stop(self) -> None:
        self._gate.detach(self)
        self.follow(False)
        if self._sock is not None:
            self._sock.close()
            self._sock = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().stop()

    def follow(self, open_: bool) -> None:
        """Take the listening socket into the loop's readers, or out of them."""
        if self._sock is None or open_ == self._accepting:
            return
        loop = asyncio.get_running_loop()
        if open_:
            loop.add_reader(self._sock.fileno(), self._accept)
        else:
            loop.remove_reader(self._sock.fileno())
        self._accepting = open_

    def _accept(self) -> None:
        assert self._sock is not None
        loop = asyncio.get_running_loop()
        factory = self._runner.server
        assert factory is not None
        for _ in range(ACCEPTS_PER_TURN):
            try:
                conn, _addr = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and the like: the next turn may do better
                log.warning("accept failed", error=str(exc))
                return
            conn.setblocking(False)
            task = loop.create_task(loop.connect_accepted_socket(factory, conn))
            self._tasks.add(task)
            task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            log.warning("accepted connection failed", error=repr(exc))
