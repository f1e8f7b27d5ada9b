"""Escalation with real servers: nobody acknowledges, so the alert escalates, each step once.

The consumer (in this loop) owns the deadlines, in Redis. Two gateway
processes; the one with the field unit is SIGKILLed and started again while
the alert waits. The unit (reconnected) gets the redelivery once, the
supervisors' room gets ``alert_escalated`` once, and one ``alert_escalated``
for other systems is in Kafka. An acknowledged alert does not escalate. An
escalation that ended is not started again when Kafka redelivers its alert.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from fleetcast.common import redisurl
from fleetcast.consumer import escalating, processing
from fleetcast.protocol import escalation, keys
from tests.harness.gateway import Client, GatewayProcess
from tests.harness.kafka import KafkaTopics, produce_events
from tests.integration.receipts_support import (
    WAIT_S,
    alert,
    answer,
    connect,
    read_topic,
    two_gateways,
    warm_up,
)

pytestmark = pytest.mark.integration

REDELIVER_S, SUPERVISORS_S, EMIT_S = 6.0, 8.0, 9.0


def rules() -> list[dict[str, Any]]:
    return [
        {
            "event_types": ["alert_created"],
            "steps": [
                {"after_s": REDELIVER_S, "action": "redeliver"},
                {"after_s": SUPERVISORS_S, "action": "supervisors", "room": "channel:supervisors"},
                {"after_s": EMIT_S, "action": "emit"},
            ],
        }
    ]


def consumer_options(topics: KafkaTopics) -> dict[str, Any]:
    return {
        "escalation_rules": rules(),
        "kafka_escalation_topic": topics.for_type("alert_created"),
        "escalation_tick_ms": 100,
    }


def escalations_of(docs: list[dict[str, Any]], delivery: str) -> list[dict[str, Any]]:
    return [d for d in docs if (d["data"].get("escalation") or {}).get("of") == delivery]


def escalated(client: Client, name: str, delivery: str) -> list[dict[str, Any]]:
    return escalations_of(client.received(name), delivery)


async def test_an_unacknowledged_alert_escalates_once_per_step_across_a_gateway_restart(
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
    tmp_path: Path,
    clients: Callable[..., Client],
) -> None:
    options = consumer_options(kafka_topics)
    async with two_gateways(kafka_topics, redis_url, tmp_path, **options) as (gw0, gw1):
        supervisor = await connect(clients, gw0.url, "sup-1", "org-a", "supervisor")
        assert (await supervisor.call("subscribe", {"room": "channel:supervisors"}))["ok"]
        unit = await connect(clients, gw1.url, "unit-b", "org-a", "field_unit")
        await warm_up(kafka_producer, kafka_topics, [(supervisor, "org-a"), (unit, "org-a")])
        # the warm-up alert escalates too: give this one its own clock
        sent = alert("org-a", sent_by="disp-1", severity="critical")
        await produce_events(kafka_producer, kafka_topics, [sent])
        delivery, started = sent["event_id"], time.monotonic()
        await unit.wait_for("alert_created")

        gw1.stop()  # SIGKILL while the alert waits for an acknowledgement
        restarted = GatewayProcess({**gw1.env}, tmp_path).start()
        try:
            await restarted.wait_ready(within=WAIT_S)
            assert time.monotonic() - started < REDELIVER_S, "restart took longer than the deadline"
            unit = await connect(clients, restarted.url, "unit-b", "org-a", "field_unit")

            async def until(check: Callable[[], bool], within: float, what: str) -> None:
                deadline = time.monotonic() + within
                while not check():
                    assert time.monotonic() < deadline, what
                    await asyncio.sleep(0.05)

            await until(
                lambda: escalated(unit, "alert_created", delivery) != [], WAIT_S, "redelivery"
            )
            assert time.monotonic() - started >= REDELIVER_S - 0.5
            await until(
                lambda: escalated(supervisor, "alert_escalated", delivery) != [], WAIT_S, "sup"
            )
            topic = kafka_topics.for_type("alert_created")

            def emitted(docs: list[dict[str, Any]]) -> bool:
                return any(
                    d["data"]["escalation"]["step"] == "emit"
                    for d in escalations_of(docs, delivery)
                )

            await read_topic(kafka_topics.bootstrap, topic, emitted)
            await asyncio.sleep(2.0)  # ticks keep running: nothing is taken twice
            docs = escalations_of(
                await read_topic(kafka_topics.bootstrap, topic, emitted), delivery
            )
        finally:
            restarted.stop()
    assert [(d["data"]["escalation"]["step"], d["data"]["escalation"]["level"]) for d in docs] == [
        ("redeliver", 1), ("supervisors", 2), ("emit", 3),
    ]  # fmt: skip
    [again] = escalated(unit, "alert_created", delivery)
    assert again["data"]["urgency"] == "high"
    assert again["event_id"] == f"{delivery}/escalation/1"
    [to_supervisors] = escalated(supervisor, "alert_escalated", delivery)
    assert to_supervisors["room"] == "channel:supervisors"
    assert to_supervisors["data"]["escalation"]["step"] == escalation.SUPERVISORS


async def test_an_acknowledged_alert_does_not_escalate(
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
    tmp_path: Path,
    clients: Callable[..., Client],
) -> None:
    options = consumer_options(kafka_topics)
    async with two_gateways(kafka_topics, redis_url, tmp_path, **options) as (gw0, gw1):
        unit = await connect(clients, gw1.url, "unit-b", "org-a", "field_unit")
        marker = await connect(clients, gw0.url, "disp-1", "org-a", "dispatcher")
        await warm_up(kafka_producer, kafka_topics, [(unit, "org-a"), (marker, "org-a")])
        sent = alert("org-a", sent_by="disp-1")
        await produce_events(kafka_producer, kafka_topics, [sent])
        delivery = sent["event_id"]
        await unit.wait_for("alert_created")
        assert (await answer(unit, delivery, "acknowledged", response="en route"))["ok"]
        await asyncio.sleep(EMIT_S + 1.0)
        # the warm-up alert, never acknowledged, escalated meanwhile: the tick ran
        topic = kafka_topics.for_type("alert_created")

        def warm_up_emitted(docs: list[dict[str, Any]]) -> bool:
            return any(
                d["data"].get("escalation", {}).get("step") == "emit"
                and d["data"]["escalation"]["of"] != delivery
                for d in docs
            )

        docs = await read_topic(kafka_topics.bootstrap, topic, warm_up_emitted)
    assert escalations_of(docs, delivery) == []
    assert escalated(unit, "alert_created", delivery) == []


def routed(doc: dict[str, Any]) -> processing.Routed:
    org = doc["organization_id"]
    route = processing.Route(doc["event_type"], org, (f"org:{org}",), (f"org:{org}",))
    return processing.Routed(route, orjson.dumps(doc), "fleet.alerts", 0, 1)


def redis_client(url: str) -> Any:
    """The client the consumer makes of FLEETCAST_REDIS_URL (one Redis or a cluster)."""
    target = redisurl.parse(url)
    return redisurl.cluster_client(target) if target.cluster else Redis.from_url(url)


async def test_an_ended_escalation_is_not_started_again_by_a_redelivered_alert(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, any_redis_url: str
) -> None:
    """A consumer that died after an escalation ended but before its commit: Kafka redelivers.

    On one Redis and on a Redis Cluster (the escalation keys carry the org's hash tag).
    """
    now = [1_000_000.0]
    redis = redis_client(any_redis_url)
    topic = kafka_topics.for_type("alert_created")
    parsed = [escalation.parse_rule(rule) for rule in rules()]
    owner = escalating.Escalations(redis, kafka_producer, parsed, topic=topic, clock=lambda: now[0])
    org = f"org-redelivered-{uuid.uuid4().hex[:8]}"
    stepped, acked = alert(org, sent_by="disp-1"), alert(org, sent_by="disp-1")
    ack = {
        "event_id": f"{acked['event_id']}/s/acknowledged",
        "event_type": "alert_receipt",
        "organization_id": org,
        "occurred_at": "2026-11-25T18:00:01Z",
        "data": {"delivery_id": acked["event_id"], "kind": "acknowledged", "roles": []},
    }
    try:
        batch = [routed(stepped), routed(acked), routed(ack)]
        await owner.observe(batch)
        for after_s in (REDELIVER_S, SUPERVISORS_S, EMIT_S):
            now[0] = 1_000_000.0 + after_s
            await owner.tick()
        assert [(of, step) for of, step, _ in owner.taken] == [
            (stepped["event_id"], "redeliver"),
            (stepped["event_id"], "supervisors"),
            (stepped["event_id"], "emit"),
        ]  # the acknowledged one ended at its first deadline
        assert await redis.hlen(keys.escalation_pending(org)) == 0

        await owner.observe(batch)  # the same records again
        now[0] += 10 * EMIT_S
        await owner.tick()
        assert len(owner.taken) == 3
        assert await redis.hlen(keys.escalation_pending(org)) == 0
        assert await redis.zcard(keys.escalation_due(org)) == 0

        def three(docs: list[dict[str, Any]]) -> bool:
            return len(escalations_of(docs, stepped["event_id"])) >= 3

        docs = await read_topic(kafka_topics.bootstrap, topic, three)
        assert len(escalations_of(docs, stepped["event_id"])) == 3
        assert escalations_of(docs, acked["event_id"]) == []
    finally:
        await redis.aclose()
