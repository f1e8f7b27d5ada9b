"""Escalation of unacknowledged alerts: the consumer owns the deadlines, in Redis.

The consumer sees an org's alerts and their receipts in order (both keyed by
org in Kafka), so it is where deadlines live: :meth:`Escalations.observe`
(called by the pipeline once a batch is in Redis, before its offsets are
committed) records each new alert of a rule's types as pending, with its
first deadline, and each acknowledgement; :meth:`Escalations.run` ticks,
claims the due entries (one script moves a due entry's score a lease ahead,
so among several consumers exactly one takes it) and takes the step
:func:`escalation.next_step` says is due, by writing its event to Kafka (the
pipeline then routes it like any event). An ended escalation (acknowledged,
or every step taken) is remembered a day, so a Kafka redelivery of its
original alert does not start it again. State is in Redis only: a consumer
restart loses nothing, a gateway restart does not matter, and a consumer that
dies mid-step leaves a claim that expires and is taken again (the step's
event id is fixed, so a retry is the same event).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

import orjson
import structlog
from redis.asyncio import Redis

from fleetcast.consumer import processing
from fleetcast.protocol import escalation, keys, receipts

log = structlog.stdlib.get_logger(__name__)

#: How long a claimed step may take before another consumer may take it (seconds).
LEASE_S: Final = 30.0
#: Due entries claimed per org per tick.
CLAIM_MAX: Final = 100

#: Claims the due members of KEYS[1] (score <= ARGV[1]) by moving them to ARGV[2].
CLAIM: Final = """
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], ARGV[2], id) end
return ids
"""


class Producer(Protocol):
    """The part of aiokafka's producer a step needs."""

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> Any: ...


@dataclass(slots=True)
class Seen:
    """What one batch told the escalations: new pending alerts and acknowledgements."""

    new: list[dict[str, Any]] = field(default_factory=list)
    #: (org, delivery id, roles of who acknowledged)
    acks: list[tuple[str, str, list[str]]] = field(default_factory=list)


def seen(routed: Sequence[processing.Routed], rules: Sequence[escalation.Rule]) -> Seen:
    """New alerts of a rule's types (not escalations themselves) and acknowledgements."""
    found = Seen()
    types = {t for rule in rules for t in rule.event_types}
    for item in routed:
        if item.event_type == receipts.RECEIPT_TYPE:
            data = orjson.loads(item.envelope_json)["data"]
            if data.get("kind") == receipts.ACKNOWLEDGED:
                target = data.get("of") or data.get("delivery_id")
                found.acks.append((item.org, str(target), list(data.get("roles") or [])))
        elif item.event_type in types:
            doc = orjson.loads(item.envelope_json)
            if receipts.ESCALATION_KEY not in doc["data"]:
                found.new.append(doc)
    return found


class Escalations:
    """Pending escalations in Redis, and the tick that takes their steps."""

    def __init__(
        self,
        redis: Redis,
        producer: Producer,
        rules: Sequence[escalation.Rule],
        *,
        topic: str,
        tick_s: float = 0.5,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._redis = redis
        self._producer = producer
        self._rules = tuple(rules)
        self._topic = topic
        self._tick_s = tick_s
        self._clock = clock
        self._claim = redis.register_script(CLAIM)
        self.taken: list[tuple[str, str, str]] = []

    async def observe(self, routed: Sequence[processing.Routed]) -> None:
        """Record a batch's new alerts and acknowledgements (a redelivery changes nothing)."""
        if not self._rules:
            return
        found = seen(routed, self._rules)
        if not (found.new or found.acks):
            return
        fresh = await self._unfinished(found.new)
        now = self._clock()
        pipe = self._redis.pipeline(transaction=False)
        for doc in fresh:
            rule = escalation.rule_for(self._rules, doc["event_type"])
            assert rule is not None
            org, delivery = doc["organization_id"], doc["event_id"]
            record = {"event": doc, "routed_at": now, "done": 0}
            pipe.hsetnx(keys.escalation_pending(org), delivery, orjson.dumps(record))
            pipe.zadd(keys.escalation_due(org), {delivery: now + rule.steps[0].after_s}, nx=True)
            pipe.sadd(keys.escalation_orgs(), org)
            for key in (keys.escalation_pending(org), keys.escalation_due(org)):
                pipe.expire(key, keys.ESCALATION_TTL_S)
        await pipe.execute()
        for org, delivery, roles in found.acks:
            await self._acknowledge(org, delivery, roles)

    async def _unfinished(self, docs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The alerts whose escalation has not already ended (a redelivered original has)."""
        if not docs:
            return []
        pipe = self._redis.pipeline(transaction=False)
        for doc in docs:
            pipe.zscore(keys.escalation_done(doc["organization_id"]), doc["event_id"])
        ended = await pipe.execute()
        return [doc for doc, at in zip(docs, ended, strict=True) if at is None]

    async def _acknowledge(self, org: str, delivery: str, roles: list[str]) -> None:
        key = keys.escalation_acks(org)
        raw = await self._redis.hget(key, delivery)
        acks = orjson.loads(raw) if raw else []
        if roles not in acks:  # a redelivered receipt is not a second acknowledgement
            acks.append(roles)
            await self._redis.hset(key, delivery, orjson.dumps(acks))
            await self._redis.expire(key, keys.ESCALATION_TTL_S)

    async def run(self) -> None:
        """Tick until cancelled; a failing tick (Redis or Kafka away) is logged and retried."""
        while True:
            await asyncio.sleep(self._tick_s)
            try:
                await self.tick()
            except Exception as exc:
                log.warning("escalation tick failed; retrying", error=repr(exc))

    async def tick(self) -> int:
        """Take every step due now; returns how many were taken."""
        taken = 0
        for raw_org in await self._redis.smembers(keys.escalation_orgs()):
            org = _text(raw_org)
            now = self._clock()
            claimed = await self._claim(
                keys=[keys.escalation_due(org)], args=[now, now + LEASE_S, CLAIM_MAX]
            )
            for raw_id in claimed:
                taken += await self._step(org, _text(raw_id), now)
            if not await self._redis.exists(keys.escalation_due(org)):
                await self._redis.srem(keys.escalation_orgs(), org)
        return taken

    async def _step(self, org: str, delivery: str, now: float) -> int:
        """The step due for one claimed delivery, then its next deadline (or its end)."""
        raw = await self._redis.hget(keys.escalation_pending(org), delivery)
        record = orjson.loads(raw) if raw else None
        rule = record and escalation.rule_for(self._rules, record["event"]["event_type"])
        if record is None or rule is None:
            await self._forget(org, delivery)
            return 0
        acks = await self._redis.hget(keys.escalation_acks(org), delivery)
        pending = escalation.Pending(
            delivery, org, record["event"]["event_type"], record["routed_at"],
            tuple(frozenset(r) for r in orjson.loads(acks or b"[]")), record["done"],
        )  # fmt: skip
        due = escalation.next_step(rule, pending, now)
        if due.step is not None:
            await self._take(record["event"], due.step, due.index + 1, now)
            record["done"] = due.index + 1
            await self._redis.hset(keys.escalation_pending(org), delivery, orjson.dumps(record))
        if due.at is None:
            await self._forget(org, delivery)
        else:
            await self._redis.zadd(keys.escalation_due(org), {delivery: due.at})
        return 1 if due.step is not None else 0

    async def _take(
        self, event: dict[str, Any], step: escalation.Step, level: int, now: float
    ) -> None:
        doc = escalation.escalation_event(event, step, level, receipts.rfc3339(now))
        org = doc["organization_id"]
        await self._producer.send_and_wait(self._topic, orjson.dumps(doc), key=org.encode())
        self.taken.append((event["event_id"], step.action, doc["event_id"]))
        log.info(
            "alert escalated", org=org, delivery=event["event_id"], step=step.action, level=level
        )

    async def _forget(self, org: str, delivery: str) -> None:
        """Drop an ended escalation, remembering for a day that it ended."""
        now, done = self._clock(), keys.escalation_done(org)
        pipe = self._redis.pipeline(transaction=False)
        pipe.zrem(keys.escalation_due(org), delivery)
        pipe.hdel(keys.escalation_pending(org), delivery)
        pipe.hdel(keys.escalation_acks(org), delivery)
        pipe.zadd(done, {delivery: now})
        pipe.zremrangebyscore(done, "-inf", now - keys.ESCALATION_TTL_S)
        pipe.expire(done, keys.ESCALATION_TTL_S)
        await pipe.execute()


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
