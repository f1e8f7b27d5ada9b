"""How packed script calls reach Redis: one server, or the shards of a Redis Cluster.

The publisher (publishing.py) packs one EVALSHA per org and batch as RESP
bytes; a :class:`Sender` delivers them and hands back one reply (or the
error) per call, in order. Two senders:

- :class:`SingleSender`: every call of a batch in one write on one pooled
  connection, then their replies: one round trip, as before Cluster support.
- :class:`ClusterSender`: built on redis-py's ``redis.asyncio.cluster.RedisCluster``.
  It keeps the slot map and a connection pool per node, follows MOVED and
  ASK and refreshes the map, so fleetcast holds none of that logic; only the
  sending of pre-packed bytes is ours (its ``execute_command`` would pack
  every argument again in Python, about a microsecond each). Each node's
  calls go in one write, the nodes concurrently. A MOVED or ASK reply is
  followed once at once; MOVED, ASK, TRYAGAIN, CLUSTERDOWN or a connection
  error mark the topology suspect, so the next batch reloads it first.

A failed call is reported, not retried here: the publisher raises, the
pipeline retries the whole batch, and the orgs whose call had succeeded are
dropped by their fence (no duplicates, nothing lost).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any, Final, Protocol

from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    MovedError,
    NoScriptError,
    ResponseError,
    TryAgainError,
)

ASKING: Final = b"*1\r\n$6\r\nASKING\r\n"


class Sender(Protocol):
    """Delivers packed calls; one reply or exception per call, in order."""

    #: What the script publishes with: PUBLISH (one Redis) or SPUBLISH (a cluster).
    publish_command: str
    #: A redis-py client for ordinary keyed commands (HMGET, SADD...).
    client: Any

    async def send(self, calls: Sequence[tuple[str, bytes]], script: str) -> list[Any]:
        """Send ``(key, packed)`` calls (``key`` names the call's slot); load ``script``
        where Redis does not know it and send those calls again."""
        ...

    async def aclose(self) -> None: ...


async def _exchange(connection: Any, packed: Sequence[bytes]) -> list[Any]:
    """Write ``packed`` at once, read one reply each (an error reply is returned, not raised)."""
    await connection.send_packed_command(b"".join(packed))
    replies: list[Any] = []
    for _ in packed:
        try:
            replies.append(await connection.read_response())
        except ResponseError as exc:  # the connection is fine: read on
            replies.append(exc)
    return replies


def sender_for(client: Any, timeout_s: float) -> Sender:
    """The sender of a redis-py client: a cluster's (``RedisCluster``) or one server's."""
    if isinstance(client, RedisCluster):
        return ClusterSender(client, timeout_s)
    return SingleSender(client, timeout_s)


class SingleSender:
    """One Redis: every call of a batch in one write, on one pooled connection."""

    publish_command = "PUBLISH"

    def __init__(self, client: Any, timeout_s: float) -> None:
        self.client = client
        self._timeout_s = timeout_s

    async def send(self, calls: Sequence[tuple[str, bytes]], script: str) -> list[Any]:
        replies = await self._send([packed for _, packed in calls])
        missing = [i for i, reply in enumerate(replies) if isinstance(reply, NoScriptError)]
        if missing:  # a new or restarted Redis: load the script, once
            await self.client.script_load(script)
            again = await self._send([calls[i][1] for i in missing])
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    async def _send(self, packed: Sequence[bytes]) -> list[Any]:
        """On a pooled connection (redis-py's own retries are not used).

        Timed here with one ``asyncio.timeout``: with a ``socket_timeout``, redis-py
        writes from a task of its own, so the request left one loop turn late,
        behind whatever the poller was decoding (measured: 58-65k -> 75-86k events/s).
        """
        pool = self.client.connection_pool
        connection = await pool.get_connection()
        try:
            async with asyncio.timeout(self._timeout_s):
                return await _exchange(connection, packed)
        except BaseException:  # timeout, cancellation, I/O: its state is unknown
            await connection.disconnect()
            raise
        finally:
            await pool.release(connection)

    async def aclose(self) -> None:
        await self.client.aclose()


class ClusterSender:
    """A Redis Cluster: each node's calls in one write, the nodes concurrently."""

    publish_command = "SPUBLISH"

    def __init__(self, client: RedisCluster, timeout_s: float) -> None:
        self.client = client
        self._timeout_s = timeout_s
        self._suspect = True  # not loaded yet
        #: Topology reloads so far (tests and metrics read it).
        self.reloads = 0

    async def send(self, calls: Sequence[tuple[str, bytes]], script: str) -> list[Any]:
        async with asyncio.timeout(self._timeout_s):
            if self._suspect:
                await self._reload()
            groups: dict[ClusterNode, list[int]] = {}
            for i, (key, _) in enumerate(calls):
                groups.setdefault(self._node(key), []).append(i)
            replies: list[Any] = [None] * len(calls)
            await asyncio.gather(
                *(
                    self._node_calls(node, index, calls, replies, script)
                    for node, index in groups.items()
                )
            )
        return replies

    async def _node_calls(
        self,
        node: ClusterNode,
        index: list[int],
        calls: Sequence[tuple[str, bytes]],
        replies: list[Any],
        script: str,
    ) -> None:
        """One node's calls; a redirected or unknown-script call is sent again, once."""
        try:
            answers = await self._on(node, [calls[i][1] for i in index])
        except Exception as exc:  # the node is down or unreachable: its calls failed
            self._suspect = True
            for i in index:
                replies[i] = exc
            return
        for i, answer in zip(index, answers, strict=True):
            replies[i] = await self._follow(node, calls[i][1], answer, script)

    async def _follow(self, node: ClusterNode, packed: bytes, answer: Any, script: str) -> Any:
        try:
            if isinstance(answer, NoScriptError):
                await self._on(node, [script_load(script)])
                return (await self._on(node, [packed]))[0]
            if isinstance(answer, MovedError):
                self._suspect = True
                await self.client.nodes_manager.move_slot(answer)
                return await self._retry(self._address(answer), packed, script, asking=False)
            if isinstance(answer, AskError):
                return await self._retry(self._address(answer), packed, script, asking=True)
            if isinstance(answer, TryAgainError | ClusterDownError):
                self._suspect = True
        except Exception as exc:
            self._suspect = True
            return exc
        return answer

    async def _retry(self, node: ClusterNode, packed: bytes, script: str, *, asking: bool) -> Any:
        if not asking:
            answer = (await self._on(node, [packed]))[0]
        else:  # the slot is being migrated: the call goes to the target, flagged
            answer = (await self._on(node, [ASKING, packed]))[1]
        if isinstance(answer, NoScriptError):
            await self._on(node, [script_load(script)])
            answer = (await self._on(node, [ASKING, packed] if asking else [packed]))[-1]
        if isinstance(answer, MovedError | AskError | TryAgainError | ClusterDownError):
            self._suspect = True
        return answer

    async def _on(self, node: ClusterNode, packed: Sequence[bytes]) -> list[Any]:
        connection = node.acquire_connection()
        try:
            return await _exchange(connection, packed)
        except BaseException:
            await connection.disconnect()
            raise
        finally:
            node.release(connection)

    def _node(self, key: str) -> ClusterNode:
        return self.client.nodes_manager.get_node_from_slot(self.client.keyslot(key))

    def _address(self, error: AskError | MovedError) -> ClusterNode:
        manager = self.client.nodes_manager
        node = manager.get_node(host=error.host, port=error.port)
        if node is None:
            manager.set_nodes(
                manager.nodes_cache,
                {
                    f"{error.host}:{error.port}": ClusterNode(
                        error.host, error.port, **manager.connection_kwargs
                    )
                },
            )
            node = manager.get_node(host=error.host, port=error.port)
        assert node is not None
        return node

    async def _reload(self) -> None:
        """Load the slot map again (CLUSTER SLOTS through redis-py)."""
        await self.client.nodes_manager.initialize()
        self._suspect = False
        self.reloads += 1

    async def aclose(self) -> None:
        await self.client.aclose()


def script_load(script: str) -> bytes:
    """SCRIPT LOAD of ``script``, packed."""
    data = script.encode()
    return b"*3\r\n$6\r\nSCRIPT\r\n$4\r\nLOAD\r\n$%d\r\n%b\r\n" % (len(data), data)
