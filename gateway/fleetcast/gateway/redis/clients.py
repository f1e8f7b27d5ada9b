"""The gateway's Redis clients: named after the gateway, with its timeouts and retries."""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.retry import Retry

from fleetcast.common import redisurl

#: Connections of each Redis client; more concurrent commands wait for one.
REDIS_POOL_SIZE = 100
#: A command may wait this many REDIS_TIMEOUT_S for a free connection.
POOL_WAIT_FACTOR = 5


def redis_client(
    url: str, *, gateway_id: str, timeout_s: float, for_pubsub: bool = False
) -> aioredis.Redis:
    """A client named after this gateway (so operators and tests can find its connections).

    Commands retry once quickly; the pub/sub client never retries by itself,
    so the listener sees every failure and rebuilds its subscriptions.
    """
    retry = Retry(NoBackoff(), 0) if for_pubsub else Retry(ExponentialBackoff(0.2, 0.05), 1)
    # A blocking pool: in a reconnect storm thousands of recoveries wait their turn for one
    # of REDIS_POOL_SIZE connections instead of failing at once with MaxConnectionsError
    # (the default pool's answer), which reported each of them as a history gap.
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=REDIS_POOL_SIZE,
        timeout=timeout_s * POOL_WAIT_FACTOR,
        client_name=f"fleetcast-gateway:{gateway_id}",
        socket_connect_timeout=timeout_s,
        socket_timeout=None if for_pubsub else timeout_s,
        retry=retry,
        health_check_interval=0,
    )
    return aioredis.Redis.from_pool(pool)


def cluster_client(target: redisurl.RedisTarget, *, gateway_id: str, timeout_s: float) -> Any:
    """redis-py's cluster client for the gateway's keyed commands (history, snapshot,
    sessions, stats): it routes each by slot and follows MOVED/ASK after a failover
    or a slot migration. Pub/sub does not use it (shards.py holds one connection
    per shard itself)."""
    return redisurl.cluster_client(
        target,
        client_name=f"fleetcast-gateway:{gateway_id}",
        socket_connect_timeout=timeout_s,
        socket_timeout=timeout_s,
        max_connections=REDIS_POOL_SIZE,
    )


def node_kwargs(target: redisurl.RedisTarget) -> dict[str, Any]:
    """Connection options for a client of one cluster node (shards.py)."""
    return {"username": target.username, "password": target.password, "ssl": target.tls}
