"""Envelopes into Redis exactly as the consumer publishes them, without Kafka.

Tests and benchmarks that need a gateway's input (histories, wire messages,
fleet snapshot, state tables) but not a broker hand envelopes to
:class:`ScriptPublisher`: each becomes a record of one partition with its own
numbering, goes through the consumer's own ``processing.prepare`` and its
publish script, fenced under a Kafka cluster id of the publisher's own, so
what lands in Redis is what the consumer would have written.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fleetcast.consumer import processing, publishing, state
from fleetcast.protocol import routing


@dataclass(frozen=True, slots=True)
class _Record:
    """What ``processing.group`` reads of a Kafka record."""

    value: bytes
    offset: int
    topic: str = "fleet.incidents"
    partition: int = 0
    key: bytes | None = None


class ScriptPublisher:
    """The consumer's routing, state rules and publish script on ``redis`` (one or a cluster)."""

    def __init__(self, redis: Any, name: str = "publisher") -> None:
        self._router = processing.Router(routing.RoutingTable.default())
        self._script = publishing.RedisPublisher(redis, cluster_id=f"{name}-{uuid.uuid4().hex}")
        self._offsets = itertools.count()  # one partition's, as Kafka would number them

    async def publish(self, docs: Sequence[Mapping[str, Any]]) -> list[processing.Routed]:
        """Publish ``docs`` as one batch; an envelope the consumer would refuse raises."""
        records = [_Record(orjson.dumps(doc), next(self._offsets)) for doc in docs]
        batch = processing.prepare(
            processing.group(records), self._router, state_rules=state.Rules()
        )
        if batch.dead:
            dead = batch.dead[0]
            raise ValueError(f"not an event: {dead.reason}: {dead.message}")
        await self._script.publish_events(batch.routed)
        return list(batch.routed)
