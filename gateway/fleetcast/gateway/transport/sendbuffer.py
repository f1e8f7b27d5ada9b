"""A bounded kernel send buffer per client connection, so alerts are not stuck behind positions.

The outbox keeps priority frames ahead of positions, but only for what it
still holds: whatever it has handed to the socket is in order for good.
Linux grows a TCP send buffer by itself up to ``net.ipv4.tcp_wmem``'s
maximum (4 MiB by default), so for a client that reads slowly the gateway
would push megabytes of positions into the kernel, and an alert would wait
for the client to read all of them first (measured: 9 s behind 3 MB for a
client reading 300 KB/s). Fixing ``SO_SNDBUF`` on each client socket caps
that: the kernel then refuses more, the transport's own buffer fills, the
outbox stops handing frames over, and from there on it sheds positions and
sends priority frames first.

Set on the socket of every HTTP response the gateway prepares (the websocket
upgrade, long-polls): the same TCP connection carries the whole session.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

Hook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def limiter(size: int) -> Hook:
    """An ``on_response_prepare`` hook fixing ``SO_SNDBUF`` at ``size`` bytes (0: leave it)."""

    async def limit(request: web.Request, _response: web.StreamResponse) -> None:
        if size > 0:
            bound(request.transport, size)

    return limit


def bound(transport: Any, size: int) -> None:
    """Fix the send buffer of ``transport``'s socket (the kernel doubles it for bookkeeping)."""
    sock = transport.get_extra_info("socket") if transport is not None else None
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, size)


def install(app: web.Application, size: int) -> None:
    app.on_response_prepare.append(limiter(size))
