"""The org's state tables read from Redis, each with its room's stream end (rooms/state.py)."""

from __future__ import annotations

from typing import Any

from fleetcast.gateway.rooms.state import ALERTS, INCIDENTS, TASKS, RawState
from fleetcast.protocol import keys, rooms


class RedisStateSource:
    """StateSource over redis-py's asyncio client: one MULTI per read."""

    def __init__(self, redis: Any) -> None:
        self._redis = redis

    async def org_state(self, org: str) -> RawState:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.state_table(org, INCIDENTS))
            pipe.hgetall(keys.state_table(org, ALERTS))
            pipe.xrevrange(keys.history_stream(rooms.org_room(org).name), "+", "-", count=1)
            incidents, alerts, top = await pipe.execute()
        return RawState(_top(top), {INCIDENTS: _fields(incidents), ALERTS: _fields(alerts)})

    async def user_tasks(self, org: str, user: str) -> RawState:
        async with self._redis.pipeline(transaction=True) as pipe:
            pipe.hgetall(keys.user_tasks(org, user))
            pipe.xrevrange(keys.history_stream(rooms.user_room(user, org).name), "+", "-", count=1)
            tasks, top = await pipe.execute()
        return RawState(_top(top), {TASKS: _fields(tasks)})


def _top(entries: list[Any]) -> str | None:
    return _text(entries[0][0]) if entries else None


def _fields(found: dict[Any, bytes]) -> dict[str, bytes]:
    return {_text(item): value for item, value in found.items()}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
