"""The Redis edge of the consumer: one script call per org per batch.

Everything an org's events of a batch need in Redis (drop redeliveries,
append to each room's history, publish, update the fleet snapshot and the
state tables) happens
in one Lua script call (``publish.lua``); the calls of a batch go in one
round trip on one Redis, or one per shard on a cluster (sending.py). A
script, not a pipeline, because the wire message must carry the stream ids
XADD just created, and because a script is atomic: a consumer killed
mid-batch leaves each org's part of it whole or absent, and the org fences
drop on the retry what was already published.

Redeliveries are dropped by a per-org, per-partition offset fence (see
:func:`fleetcast.protocol.keys.publish_fence`), not by remembering event ids:
a fence costs one hash field per partition where ids cost a key per event
(45 million keys for 15 minutes at 50,000 events/s).

The wire message's bytes come from :mod:`fleetcast.protocol.wire`'s
templates (its one author); the script only splices stream ids into them.
The call is packed, as RESP, by :mod:`fleetcast.consumer.encoding`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

from redis.exceptions import RedisError

from fleetcast.consumer import processing, sending
from fleetcast.consumer.encoding import SCRIPT, Call, Encoder, Limits, OrgCall, fence_field
from fleetcast.protocol import keys

#: Script calls per batch before giving up on a fence that keeps moving (another
#: consumer publishing the same partition: a zombie after a rebalance).
FENCE_ATTEMPTS: Final = 3
#: The script's answer when part of the batch was published before.
FENCED: Final = -1
#: The script's answer when a task's owner on record has a table the call did not
#: declare (a reassignment the event does not tell): it wrote nothing and names the
#: tables; the call is sent again declaring them. A script touches only declared
#: keys: a cluster routes a call, and holds it back while its slot migrates, by them.
UNDECLARED: Final = -2


@dataclass(frozen=True, slots=True)
class Outcome:
    published: int
    duplicates: int


class Publisher(Protocol):
    """Where routed events go, in two steps: encode (CPU only, done ahead), then publish.

    ``publish`` raises on failure (nothing then counts as published) and may be
    called again with the same call.
    """

    def encode(self, routed: Sequence[processing.Routed]) -> Call: ...

    async def publish(self, call: Call) -> Outcome: ...

    async def drop_stale_fences(self, ends: Mapping[tuple[str, int], int]) -> list[str]: ...


class FenceMoving(RedisError):
    """The fence moved under every attempt: another consumer publishes these partitions."""


def unfenced(
    routed: Sequence[processing.Routed], fences: Mapping[tuple[str, int], int]
) -> list[processing.Routed]:
    """The events above their partition's fence (the others were published before)."""
    return [item for item in routed if item.offset > fences.get((item.topic, item.partition), -1)]


class RedisPublisher:
    """Publisher over a :class:`fleetcast.consumer.sending.Sender` (one Redis or a cluster).

    ``cluster_id`` is the Kafka cluster's: it names the fence hashes. Each call
    gives up after ``timeout_s`` (the client itself should have no
    ``socket_timeout``: see :meth:`SingleSender._send`). A redis-py client is
    wrapped in its sender (:func:`fleetcast.consumer.sending.sender_for`).
    """

    def __init__(
        self,
        sender: Any,
        limits: Limits | None = None,
        cluster_id: str = "local",
        timeout_s: float = 5.0,
    ) -> None:
        if not hasattr(sender, "send"):
            sender = sending.sender_for(sender, timeout_s)
        self._sender: sending.Sender = sender
        self._timeout_s = timeout_s
        self._cluster_id = cluster_id
        self._encoder = Encoder(limits or Limits(), cluster_id, sender.publish_command)
        #: Orgs this process has added to keys.fenced_orgs (so once each).
        self._registered: set[str] = set()

    def fence_key(self, org: str) -> str:
        return keys.publish_fence(self._cluster_id, org)

    def encode(self, routed: Sequence[processing.Routed]) -> Call:
        return self._encoder.encode(routed, time.monotonic())

    async def publish(self, call: Call) -> Outcome:
        """Every org's call; a fenced org is sent again without its published events.

        Raises when any org's call failed (after the others were sent): the
        retry of the whole batch finds the orgs that succeeded fenced.
        """
        outcome = Outcome(0, 0)
        pending = [org for org in call.orgs if org.routed]
        await self._register([org.org for org in pending])
        for _ in range(FENCE_ATTEMPTS):
            if not pending:
                return outcome
            replies = await self._send(pending)
            failed = next((r for r in replies if isinstance(r, BaseException)), None)
            again: list[OrgCall] = []
            for org, reply in zip(pending, replies, strict=True):
                if not isinstance(reply, BaseException):
                    outcome = self._answered(org, reply, call.at, again, outcome)
            if failed is not None:
                self._encoder.forget_refreshes()
                raise failed
            pending = again
        if not pending:
            return outcome
        raise FenceMoving(f"the publish fence moved under {FENCE_ATTEMPTS} attempts")

    def _answered(
        self, org: OrgCall, reply: list[Any], at: float, again: list[OrgCall], outcome: Outcome
    ) -> Outcome:
        """Count one org's reply; what is to be sent again goes to ``again``."""
        if reply[0] == UNDECLARED:  # nothing written: declare the owners' tables
            extra = (*org.extra, *(_text(key) for key in reply[1:]))
            again.append(self._encoder.encode_org(org.org, org.routed, at, extra))
            return outcome
        if reply[0] != FENCED:
            self._encoder.confirm(org, at)
            return Outcome(outcome.published + int(reply[0]), outcome.duplicates)
        kept = unfenced(org.routed, fences_of(org.routed, reply[1:]))
        if kept:
            again.append(self._encoder.encode_org(org.org, kept, at, org.extra))
        return Outcome(outcome.published, outcome.duplicates + len(org.routed) - len(kept))

    async def publish_events(self, routed: Sequence[processing.Routed]) -> Outcome:
        """Encode and publish at once (tests and tools that write as the consumer does)."""
        return await self.publish(self.encode(routed))

    async def drop_stale_fences(self, ends: Mapping[tuple[str, int], int]) -> list[str]:
        """Remove fences at or past their partition's end offset; returns ``org/field`` names.

        Such a fence belongs to an earlier incarnation of the topic (deleted and
        created again): left alone, it would drop the new topic's first records.
        """
        fields = [fence_field(topic, partition) for topic, partition in ends]
        if not fields:
            return []
        client, stale = self._sender.client, []
        async with asyncio.timeout(self._timeout_s):
            orgs = sorted(_text(org) for org in await client.smembers(self._registry))
            for org in orgs:
                values = await client.hmget(self.fence_key(org), fields)
                names = [
                    name
                    for name, end, value in zip(fields, ends.values(), values, strict=True)
                    if value is not None and int(value) >= end
                ]
                if names:
                    await client.hdel(self.fence_key(org), *names)
                    stale += [f"{org}/{name}" for name in names]
        return stale

    @property
    def _registry(self) -> str:
        return keys.fenced_orgs(self._cluster_id)

    async def _register(self, orgs: Sequence[str]) -> None:
        """Name new orgs in the fence registry before their first fence exists."""
        new = [org for org in orgs if org not in self._registered]
        if not new:
            return
        async with asyncio.timeout(self._timeout_s):
            await self._sender.client.sadd(self._registry, *new)
            await self._sender.client.expire(self._registry, self._encoder.fence_ttl_s)
        self._registered.update(new)

    async def _send(self, calls: Sequence[OrgCall]) -> list[Any]:
        try:
            return await self._sender.send([(c.key, c.packed) for c in calls], SCRIPT)
        except BaseException:  # Redis may have lost state (restarted): set TTLs again
            self._encoder.forget_refreshes()
            raise


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def fences_of(
    routed: Sequence[processing.Routed], values: Sequence[Any]
) -> dict[tuple[str, int], int]:
    """The script's fences (in the order :class:`Encoder` sent the partitions)."""
    partitions = list(dict.fromkeys((item.topic, item.partition) for item in routed))
    return {
        partition: int(value)
        for partition, value in zip(partitions, values, strict=True)
        if value is not None
    }
