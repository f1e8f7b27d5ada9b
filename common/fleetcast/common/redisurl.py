"""``FLEETCAST_REDIS_URL``: one Redis, or the seed list of a Redis Cluster.

- ``redis://host:port[/db]`` (or ``rediss://``): one server, as redis-py reads it.
- ``redis+cluster://host:port[,host:port...]`` (or ``rediss+cluster://``): a
  Redis Cluster; any reachable seed is enough, the client learns the rest
  (CLUSTER SLOTS). Credentials go before the first seed
  (``redis+cluster://user:pass@h1:7000,h2:7000``). A cluster has only db 0.

Both components read it through :func:`parse` and build their clients with
:func:`cluster_client`, so the two accept exactly the same strings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote

from redis.asyncio.cluster import ClusterNode, RedisCluster

#: What the operator's CRD accepts too (operator/spec.py keeps the same pattern).
URL_PATTERN: Final = r"^rediss?(\+cluster)?://"

_SEED = re.compile(r"^(?P<host>\[[^\]]+\]|[^:,/\[\]]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True, slots=True)
class RedisTarget:
    """Where Redis is: ``cluster`` False means ``url`` is an ordinary redis-py URL."""

    url: str
    cluster: bool
    seeds: tuple[tuple[str, int], ...] = ()
    tls: bool = False
    username: str | None = None
    password: str | None = None


def parse(url: str) -> RedisTarget:
    """Check and split ``url``; raises ValueError saying what is wrong."""
    if not re.match(URL_PATTERN, url):
        raise ValueError(
            "must start with redis://, rediss://, redis+cluster:// or rediss+cluster://"
        )
    scheme, _, rest = url.partition("://")
    if not scheme.endswith("+cluster"):
        return RedisTarget(url=url, cluster=False)
    credentials, _, hosts = rest.rpartition("@")
    hosts = hosts.rstrip("/")
    seeds = []
    for seed in hosts.split(","):
        match = _SEED.match(seed.strip())
        if match is None:
            raise ValueError(f"cluster seed {seed!r} is not host:port")
        seeds.append((match["host"].strip("[]"), int(match["port"])))
    username, password = _credentials(credentials)
    return RedisTarget(
        url=url,
        cluster=True,
        seeds=tuple(seeds),
        tls=scheme.startswith("rediss"),
        username=username,
        password=password,
    )


def _credentials(text: str) -> tuple[str | None, str | None]:
    if not text:
        return None, None
    user, colon, password = text.partition(":")
    if not colon:
        return None, unquote(user)
    return unquote(user) or None, unquote(password)


def validated(url: str) -> str:
    """A settings validator: ``url`` if it parses (the error says why not)."""
    parse(url)
    return url


def cluster_client(target: RedisTarget, **kwargs: Any) -> RedisCluster:
    """redis-py's cluster client over the seeds (it follows MOVED/ASK and refreshes slots)."""
    return RedisCluster(
        startup_nodes=[ClusterNode(host, port) for host, port in target.seeds],
        ssl=target.tls,
        username=target.username,
        password=target.password,
        **kwargs,
    )
