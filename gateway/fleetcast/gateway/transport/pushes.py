"""Pub/sub pushes read in bulk from a redis-py pub/sub connection.

redis-py hands out one message per ``get_message`` call: about 40 µs of
wrappers (health check, retry, timeout, reply parsing, dict building) per
message, and another 30 µs for the call that finds nothing more. At a few
thousand events a second that is a tenth of a core, for nothing. A
:class:`PushReader` reads whatever the socket holds (one ``read``), parses
every complete reply with its own hiredis reader, and returns them all: the
listener handles them as one batch (and so writes to each client once).

redis-py still opens the connection (address, TLS, AUTH, SELECT, client
name) and sends SUBSCRIBE / UNSUBSCRIBE; only reading moves here, from the
first read on (redis-py has read nothing from a pub/sub connection until
``get_message`` is called, which the listener then never does).
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import hiredis

#: Bytes read from the socket at a time.
READ_SIZE: Final = 256 * 1024


class PushReader:
    """Complete pub/sub replies of one connection, as many as have arrived."""

    def __init__(self, stream: asyncio.StreamReader) -> None:
        self._stream = stream
        self._replies = hiredis.Reader()

    @classmethod
    def of(cls, pubsub: Any) -> PushReader:
        """The reader of a redis-py PubSub that has subscribed (so has its connection)."""
        return cls(pubsub.connection._reader)

    async def read(self, wait_s: float) -> list[Any]:
        """Every complete reply now, waiting up to ``wait_s`` for one; [] after the wait.

        Raises ConnectionError when the server closed the connection, and the
        server's error reply as ``hiredis.ReplyError``.
        """
        replies = self._complete()
        if replies:
            return replies
        try:
            async with asyncio.timeout(wait_s):
                data = await self._stream.read(READ_SIZE)
        except TimeoutError:
            return []
        if not data:
            raise ConnectionError("redis closed the pub/sub connection")
        self._replies.feed(data)
        return self._complete()

    def _complete(self) -> list[Any]:
        replies = []
        while (reply := self._replies.gets()) is not False:
            if isinstance(reply, hiredis.ReplyError):
                raise reply
            replies.append(reply)
        return replies
