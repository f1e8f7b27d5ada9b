"""Control messages from the control topic, recorded in Redis and fanned out to the gateways.

The consumer is the one writer of Redis: a revocation or withdrawal
(protocol/control.py) goes into the control log and the revocation list,
and out on the gateways' control channel, in one script call per batch,
before the batch's offsets are committed (at least once; acting on one
twice changes nothing).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from importlib import resources
from typing import Any, Final

from redis.exceptions import NoScriptError

from fleetcast.protocol import control, keys

SCRIPT: Final = resources.files("fleetcast.consumer").joinpath("control.lua").read_text()
SCRIPT_SHA: Final = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()


#: The script's KEYS (one slot: the ``{control}`` tag).
KEYS: Final = (keys.control_log(), keys.revocations(), keys.control_channel())


def arguments(
    controls: Sequence[control.Control], now: float, publish_command: str = "PUBLISH"
) -> list[Any]:
    """The script's ARGV for ``controls`` (pure)."""
    argv: list[Any] = [publish_command, keys.CONTROL_LOG_MAXLEN, f"{now:.3f}"]
    for message in controls:
        entries = control.members(message)
        argv += [control.encode(message), f"{message.until:.3f}", len(entries), *entries]
    return argv


class ControlWriter:
    """Applies control messages to Redis (raises on failure; the pipeline retries).

    Takes a sending.Sender (its client, and PUBLISH or SPUBLISH) or a plain client.
    """

    def __init__(self, redis: Any, timeout_s: float) -> None:
        self._publish = getattr(redis, "publish_command", "PUBLISH")
        self._redis = getattr(redis, "client", redis)
        self._timeout_s = timeout_s

    async def apply(self, controls: Sequence[control.Control]) -> None:
        if not controls:
            return
        argv = arguments(controls, time.time(), self._publish)
        redis_keys = list(KEYS)
        async with asyncio.timeout(self._timeout_s):
            try:
                await self._redis.evalsha(SCRIPT_SHA, len(redis_keys), *redis_keys, *argv)
            except NoScriptError:  # a new or restarted Redis
                await self._redis.eval(SCRIPT, len(redis_keys), *redis_keys, *argv)
