"""Session records and this gateway's heartbeat in Redis, for cluster-wide /stats.

Nothing on a client's path waits for Redis here: connects, subscribes and
disconnects only mark a session dirty or gone, and one writer loop flushes
the marks in pipelines every :data:`FLUSH_INTERVAL_S`, refreshes every TTL
well before it runs out, and rewrites everything after Redis comes back
(a restarted Redis has lost the records). A failed flush keeps its marks.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable
from typing import Any, Final

import orjson
import structlog

from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.protocol import keys

log = structlog.stdlib.get_logger(__name__)

FLUSH_INTERVAL_S: Final = 0.5
REFRESH_INTERVAL_S: Final = keys.SESSION_TTL_S / 3
HEARTBEAT_INTERVAL_S: Final = keys.GATEWAY_TTL_S / 3
PIPELINE_CHUNK: Final = 500


def session_fields(conn: Connection, gateway_id: str) -> dict[str, str]:
    """The hash stored under keys.session(sid)."""
    return {
        "user": conn.user,
        "org": conn.org,
        "gateway": gateway_id,
        "rooms": orjson.dumps(sorted(conn.rooms)).decode(),
        "connected_at": f"{conn.connected_at:.3f}",
    }


class SessionStore:
    """Keeps keys.session(sid) for each local connection and the gateway heartbeat."""

    def __init__(self, redis: Any, registry: Registry, gateway_id: str) -> None:
        self._redis = redis
        self._registry = registry
        self._gateway_id = gateway_id
        self._dirty: set[str] = set()
        self._gone: set[str] = set()
        self._wake = asyncio.Event()
        self._refreshed = self._beat = 0.0
        self._beat_counts: dict[str, int] = {}
        self.healthy = False

    def touch(self, sid: str) -> None:
        """The session is new or its rooms changed: (re)write it soon."""
        self._dirty.add(sid)
        self._gone.discard(sid)

    def drop(self, sid: str) -> None:
        self._dirty.discard(sid)
        self._gone.add(sid)

    def restore(self) -> None:
        """Redis came back: rewrite every record and the heartbeat at once."""
        self._dirty.update(conn.sid for conn in self._registry)
        self._refreshed = self._beat = 0.0
        self._wake.set()

    async def run(self) -> None:
        while True:
            try:
                await self.flush()
                self.healthy = True
            except Exception as exc:  # Redis away: keep the marks, try again later
                if self.healthy:
                    log.warning("session store unavailable", error=repr(exc))
                self.healthy = False
            with contextlib.suppress(TimeoutError):  # asyncio.timeout: see Fanout.run_canary
                async with asyncio.timeout(FLUSH_INTERVAL_S):
                    await self._wake.wait()
            self._wake.clear()

    async def flush(self) -> None:
        now = time.monotonic()
        if self._gone:
            gone, self._gone = self._gone, set()
            try:
                await self._redis.delete(*(keys.session(sid) for sid in gone))
            except BaseException:
                self._gone |= gone
                raise
        if now - self._refreshed >= REFRESH_INTERVAL_S:
            await self._refresh_all()
            self._refreshed = now
        if self._dirty:
            dirty, self._dirty = self._dirty, set()
            try:
                await self._write(dirty)
            except BaseException:
                self._dirty |= dirty
                raise
        counts = self._registry.per_org()
        if counts != self._beat_counts or now - self._beat >= HEARTBEAT_INTERVAL_S:
            await self._heartbeat(counts)
            self._beat, self._beat_counts = now, counts

    async def _write(self, sids: Iterable[str]) -> None:
        conns = [conn for sid in sids if (conn := self._registry.get(sid)) is not None]
        for start in range(0, len(conns), PIPELINE_CHUNK):
            async with self._redis.pipeline(transaction=False) as pipe:
                for conn in conns[start : start + PIPELINE_CHUNK]:
                    key = keys.session(conn.sid)
                    pipe.hset(key, mapping=session_fields(conn, self._gateway_id))
                    pipe.expire(key, keys.SESSION_TTL_S)
                await pipe.execute()

    async def _refresh_all(self) -> None:
        """Extend every TTL; a record that is missing (Redis restarted) is rewritten."""
        conns = list(self._registry)
        for start in range(0, len(conns), PIPELINE_CHUNK):
            chunk = conns[start : start + PIPELINE_CHUNK]
            async with self._redis.pipeline(transaction=False) as pipe:
                for conn in chunk:
                    pipe.expire(keys.session(conn.sid), keys.SESSION_TTL_S)
                results = await pipe.execute()
            self._dirty.update(conn.sid for conn, ok in zip(chunk, results, strict=True) if not ok)

    async def _heartbeat(self, counts: dict[str, int]) -> None:
        key = keys.gateway_heartbeat(self._gateway_id)
        record = {
            "connections": str(sum(counts.values())),
            "orgs": orjson.dumps(counts).decode(),
            "updated_at": f"{time.time():.3f}",
        }
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.delete(key)
            pipe.hset(key, mapping=record)
            pipe.expire(key, keys.GATEWAY_TTL_S)
            await pipe.execute()

    async def close(self) -> None:
        """On shutdown: remove our records now rather than waiting for TTLs."""
        sids = [conn.sid for conn in self._registry] + list(self._gone)
        keys_ = [keys.session(sid) for sid in sids] + [keys.gateway_heartbeat(self._gateway_id)]
        for start in range(0, len(keys_), PIPELINE_CHUNK):
            await self._redis.delete(*keys_[start : start + PIPELINE_CHUNK])


async def cluster_stats(redis: Any) -> dict[str, Any]:
    """Connections per gateway and per org, summed over every live heartbeat."""
    gateways: dict[str, int] = {}
    orgs: dict[str, int] = {}
    async for key in redis.scan_iter(match=keys.GATEWAY_PATTERN, count=100):
        record = await redis.hgetall(key)
        if not record:
            continue
        name = _text(key)[len(keys.gateway_heartbeat("")) :]
        gateways[name] = int(record.get(b"connections", b"0"))
        for org, count in orjson.loads(record.get(b"orgs", b"{}")).items():
            orgs[org] = orgs.get(org, 0) + int(count)
    return {"gateways": gateways, "connections": sum(gateways.values()), "orgs": orgs}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
