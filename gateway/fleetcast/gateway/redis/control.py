"""The control log and the revocation list, read from Redis (edge/revocation.py acts on them)."""

from __future__ import annotations

from typing import Any

from fleetcast.protocol import keys


class RedisControlReader:
    """ControlReader over redis-py's asyncio client."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def revoked(self, now: float) -> list[tuple[str, float]]:
        """Every revocation entry still in force: (member, until)."""
        found = await self._redis.zrangebyscore(keys.revocations(), now, "+inf", withscores=True)
        return [(_text(member), float(until)) for member, until in found]

    async def log_after(self, last_id: str | None) -> tuple[str | None, list[bytes]]:
        """Messages after ``last_id``; with None, none: only where the log ends now."""
        if last_id is None:
            top = await self._redis.xrevrange(keys.control_log(), "+", "-", count=1)
            return (_text(top[0][0]) if top else "0-0"), []
        entries = await self._redis.xrange(keys.control_log(), f"({last_id}", "+")
        if not entries:
            return last_id, []
        messages = [fields.get(b"m", b"") for _, fields in entries]
        return _text(entries[-1][0]), messages


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
