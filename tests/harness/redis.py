"""Pytest fixtures for a real redis-server (see fleetcast.devtools.redis).

- ``redis_server``: one server for the whole session (never stop it in a test).
- ``redis_url``: the shared server's URL, emptied (FLUSHALL) before the test.
- ``own_redis``: a private server for one test, which it may stop/restart freely.
- ``redis_cluster``: one Redis Cluster (3 masters + 3 replicas) for the session;
  ``cluster_url`` its seed list, emptied before the test.
- ``any_redis_url``: parametrized over "single" and "cluster": a test of the
  whole path that takes it runs on both.
- ``own_cluster``: a private cluster for one test (failover, slot migration).
- :func:`client`: redis-py's client for either kind of URL.

A missing redis-server fails the test (``make test`` installs it first).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import pytest
from redis.asyncio import Redis, RedisCluster

from fleetcast.common import redisurl
from fleetcast.consumer import publishing, sending
from fleetcast.devtools.redis import RedisClusterServer, RedisServer
from fleetcast.protocol import keys


def client(url: str, **kwargs: Any) -> Any:
    """``redis.asyncio.Redis`` for one server, ``RedisCluster`` for a cluster URL."""
    target = redisurl.parse(url)
    if target.cluster:
        return redisurl.cluster_client(target, **kwargs)
    return Redis.from_url(url, **kwargs)


def flushall(port: int) -> None:
    """Empty every db over raw RESP (no client library, no event loop needed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        reply = sock.recv(64)
    if not reply.startswith(b"+OK"):
        raise RuntimeError(f"FLUSHALL failed: {reply!r}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if not redis_server.running:  # a test stopped the shared server by mistake
        redis_server.start()
    assert redis_server.port is not None
    flushall(redis_server.port)
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[RedisClusterServer]:
    cluster = RedisClusterServer().start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


@pytest.fixture
def cluster_url(redis_cluster: RedisClusterServer) -> str:
    if not redis_cluster.running:  # a test killed a node of the shared cluster by mistake
        raise RuntimeError("the shared redis cluster lost a node: use own_cluster to kill nodes")
    redis_cluster.flushall()
    return redis_cluster.url


@pytest.fixture(params=["single", "cluster"])
def any_redis_url(request: pytest.FixtureRequest) -> str:
    """One Redis or a Redis Cluster: the same test runs on both."""
    name = "redis_url" if request.param == "single" else "cluster_url"
    return str(request.getfixturevalue(name))


@pytest.fixture
def own_cluster() -> Iterator[RedisClusterServer]:
    cluster = RedisClusterServer().start()
    try:
        yield cluster
    finally:
        cluster.cleanup()


class OrgListener:
    """Raw pub/sub messages of one org's channel, on one Redis or on its cluster shard."""

    def __init__(self, redis: Any, org: str) -> None:
        self._redis, self._channel = redis, keys.org_channel(org)
        self._node: Any = None
        self._pubsub: Any = None

    async def __aenter__(self) -> OrgListener:
        if isinstance(self._redis, RedisCluster):
            await self._redis.initialize()
            node = self._redis.get_node_from_key(self._channel)
            assert node is not None
            self._node = Redis(host=node.host, port=int(node.port))
            self._pubsub = self._node.pubsub()
            await self._pubsub.ssubscribe(self._channel)
        else:
            self._pubsub = self._redis.pubsub()
            await self._pubsub.subscribe(self._channel)
        await self._pubsub.get_message(timeout=1)  # the confirmation
        return self

    async def drain(self, quiet_s: float = 0.5) -> list[bytes]:
        """Every message until none came for ``quiet_s``."""
        messages = []
        while (
            message := await self._pubsub.get_message(
                ignore_subscribe_messages=True, timeout=quiet_s
            )
        ) is not None:
            messages.append(message["data"])
        return messages

    async def __aexit__(self, *_: object) -> None:
        await self._pubsub.aclose()
        if self._node is not None:
            await self._node.aclose()


async def publish(redis: Any, channel: str, message: bytes | str) -> int:
    """PUBLISH on one Redis, SPUBLISH on a cluster (as the consumer does); receivers."""
    if isinstance(redis, RedisCluster):
        return int(await redis.spublish(channel, message))
    return int(await redis.publish(channel, message))


async def kill_pubsub(redis: Any) -> int:
    """CLIENT KILL TYPE pubsub on the server, or on every master of a cluster; how many."""
    command = ("CLIENT", "KILL", "TYPE", "pubsub")
    if not isinstance(redis, RedisCluster):
        return int(await redis.execute_command(*command))
    await redis.initialize()
    killed = 0
    for node in redis.get_primaries():
        async with Redis(host=node.host, port=int(node.port)) as one:
            killed += int(await one.execute_command(*command))  # type: ignore[no-untyped-call]
    return killed


def publisher(redis: Any, *args: Any, **kwargs: Any) -> Any:
    """The consumer's publisher on ``redis`` (its cluster sender on a cluster)."""
    if isinstance(redis, RedisCluster):
        return publishing.RedisPublisher(sending.ClusterSender(redis, 5.0), *args, **kwargs)
    return publishing.RedisPublisher(redis, *args, **kwargs)
