"""What the receipt and escalation tests share: two gateway processes, a consumer, clients."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from fleetcast.protocol import receipts
from tests.harness.gateway import SECRET, Client, GatewayProcess, make_token, wait_until
from tests.harness.kafka import KafkaTopics, consumer_settings, produce_events, running_consumer

WAIT_S = 30.0
_serial = itertools.count()


def alert(org: str, **data: Any) -> dict[str, Any]:
    return {
        "event_id": f"{org}-alert-{next(_serial)}",
        "event_type": "alert_created",
        "organization_id": org,
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": {"alert_id": f"al-{next(_serial)}", **data},
    }


@contextlib.asynccontextmanager
async def two_gateways(
    topics: KafkaTopics, redis_url: str, log_dir: Path, **consumer: Any
) -> AsyncIterator[list[GatewayProcess]]:
    """A consumer (in this loop) and two gateway processes writing receipts to this test's topic."""
    env = {
        "FLEETCAST_JWT_SECRET": SECRET,
        "FLEETCAST_REDIS_URL": redis_url,
        "FLEETCAST_KAFKA_BOOTSTRAP_SERVERS": topics.bootstrap,
        "FLEETCAST_KAFKA_CONTROL_TOPIC": topics.control,
        "FLEETCAST_KAFKA_RECEIPTS_TOPIC": topics.for_type(receipts.RECEIPT_TYPE),
        "FLEETCAST_RECEIPT_FLUSH_MS": "100",
    }
    gateways = [
        GatewayProcess({**env, "FLEETCAST_GATEWAY_ID": f"gw-{n}"}, log_dir).start()
        for n in range(2)
    ]
    try:
        async with running_consumer(consumer_settings(topics, redis_url, **consumer)):
            await asyncio.gather(*(g.wait_ready(within=60) for g in gateways))
            yield gateways
    finally:
        for gateway in gateways:
            gateway.stop()


async def connect(
    make: Callable[..., Client], url: str, sub: str, org: str, role: str, **claims: Any
) -> Client:
    client = make(url)
    assert await client.connect(make_token(sub, org, (role,), ttl=600, **claims))
    session = (await client.wait_for("session"))[0]
    assert session["receipts"] == ["alert_created", "alert_escalated"]
    return client


def alerts(client: Client) -> list[dict[str, Any]]:
    return client.received("alert_created")


def receipts_of(client: Client, delivery_id: str) -> list[dict[str, Any]]:
    return [
        r for r in client.received(receipts.RECEIPT_TYPE) if r["data"]["delivery_id"] == delivery_id
    ]


async def warm_up(
    producer: AIOKafkaProducer, topics: KafkaTopics, pairs: list[tuple[Client, str]]
) -> None:
    """One alert per org, awaited by every client: both gateways now listen to the org."""
    for org in sorted({org for _, org in pairs}):
        await produce_events(producer, topics, [alert(org)])
    for client, _ in pairs:
        await wait_until(lambda c=client: len(alerts(c)) >= 1, WAIT_S, "warm-up alert")  # type: ignore[misc]
        client.events.clear()


async def answer(client: Client, delivery_id: str, kind: str, **extra: Any) -> dict[str, Any]:
    ack: dict[str, Any] = await client.call(
        "receipt", {"delivery_id": delivery_id, "kind": kind, **extra}
    )
    return ack


async def read_topic(
    bootstrap: str, topic: str, until: Callable[[list[dict[str, Any]]], bool]
) -> list[dict[str, Any]]:
    """Every record of ``topic`` from the start, read until ``until`` holds (bounded)."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", group_id=None
    )
    await consumer.start()
    docs: list[dict[str, Any]] = []
    try:
        async with asyncio.timeout(WAIT_S):
            while not until(docs):
                polled = await consumer.getmany(timeout_ms=200)
                docs += [orjson.loads(r.value) for rs in polled.values() for r in rs if r.value]
    finally:
        await consumer.stop()
    return docs
