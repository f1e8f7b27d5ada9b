"""Receipted alerts with real servers: Kafka -> consumer -> Redis -> two gateway processes.

An alert to the org room reaches members on both gateways; each answers
delivered, displayed and acknowledged; every receipt (and each gateway's own
``sent`` fact) reaches the alert's sender, once, through the consumer like
any event. A forged receipt, or one for another org's alert, is refused. An
acknowledgement the gateway acked is in Kafka even if that gateway is then
SIGKILLed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from fleetcast.protocol import receipts
from tests.harness.gateway import SECRET, Client, GatewayProcess, make_token, wait_until
from tests.harness.kafka import KafkaTopics, consumer_settings, produce_events, running_consumer

pytestmark = pytest.mark.integration

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
    topics: KafkaTopics, redis_url: str, log_dir: Path
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
        async with running_consumer(consumer_settings(topics, redis_url)):
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
    assert session["receipts"] == ["alert_created"]
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


async def test_every_receipt_of_both_gateways_reaches_the_sender_once_and_forgeries_are_refused(
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
    tmp_path: Path,
    clients: Callable[..., Client],
) -> None:
    async with two_gateways(kafka_topics, redis_url, tmp_path) as (gw0, gw1):
        sender = await connect(clients, gw0.url, "disp-1", "org-a", "dispatcher")
        unit_a = await connect(clients, gw0.url, "unit-a", "org-a", "field_unit")
        unit_b = await connect(clients, gw1.url, "unit-b", "org-a", "field_unit")
        outsider = await connect(clients, gw1.url, "disp-b", "org-b", "dispatcher")
        everyone = [(sender, "org-a"), (unit_a, "org-a"), (unit_b, "org-a"), (outsider, "org-b")]
        await warm_up(kafka_producer, kafka_topics, everyone)

        sent = alert("org-a", sent_by="disp-1", severity="critical")
        await produce_events(kafka_producer, kafka_topics, [sent])
        delivery = sent["event_id"]
        for unit in (unit_a, unit_b):
            [got] = await unit.wait_for("alert_created")
            assert got["event_id"] == delivery
            for kind in ("delivered", "displayed"):
                assert await answer(unit, delivery, kind) == {
                    "ok": True,
                    "delivery_id": delivery,
                    "kind": kind,
                }
            acked = await answer(unit, delivery, "acknowledged", response="en route")
            assert acked["ok"] is True
            again = await answer(unit, delivery, "acknowledged", response="en route")
            assert again["duplicate"] is True

        forged = await answer(unit_a, "org-a-alert-never-sent", "acknowledged")
        assert forged["error"]["code"] == "unknown_delivery"
        other_org = await answer(outsider, delivery, "acknowledged")
        assert other_org["error"]["code"] == "unknown_delivery"
        bad = await answer(unit_a, delivery, "sent")
        assert bad["error"]["code"] == "invalid_receipt"

        def client_receipts() -> list[dict[str, Any]]:
            return [r for r in receipts_of(sender, delivery) if r["data"]["kind"] != receipts.SENT]

        def sent_sessions() -> list[str]:
            return [
                item["recipient"]
                for r in receipts_of(sender, delivery) if r["data"]["kind"] == receipts.SENT
                for item in r["data"]["recipients"]
            ]  # fmt: skip

        await wait_until(
            lambda: len(client_receipts()) >= 6 and len(sent_sessions()) >= 3, WAIT_S, "receipts"
        )
        # a marker alert after everything: once the sender has it, nothing else is on its way
        marker = alert("org-a", sent_by="disp-1")
        await produce_events(kafka_producer, kafka_topics, [marker])
        await wait_until(
            lambda: any(a["event_id"] == marker["event_id"] for a in alerts(sender)),
            WAIT_S,
            "marker",
        )
        await asyncio.sleep(0.5)  # the gateways' sent facts of the delivery are flushed by now

        got = client_receipts()
        pairs = sorted((r["data"]["recipient"], r["data"]["kind"]) for r in got)
        assert pairs == sorted((u, k) for u in ("unit-a", "unit-b") for k in receipts.CLIENT_KINDS)
        assert {r["data"]["gateway"] for r in got} == {"gw-0", "gw-1"}
        assert [r["data"].get("response") for r in got if r["data"]["kind"] == "acknowledged"] == [
            "en route", "en route",
        ]  # fmt: skip
        assert sorted(sent_sessions()) == ["disp-1", "unit-a", "unit-b"]  # each once, both gateways
        assert all(r["room"] == "user:disp-1" for r in receipts_of(sender, delivery))
        # receipts go to the sender (and an incident room), not to the whole org
        assert receipts_of(unit_a, delivery) == []
        assert receipts_of(outsider, delivery) == []


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


async def test_an_acked_acknowledgement_survives_its_gateway_being_sigkilled(
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
    tmp_path: Path,
    clients: Callable[..., Client],
) -> None:
    async with two_gateways(kafka_topics, redis_url, tmp_path) as (gw0, gw1):
        sender = await connect(clients, gw0.url, "disp-1", "org-a", "dispatcher")
        unit = await connect(clients, gw1.url, "unit-b", "org-a", "field_unit")
        await warm_up(kafka_producer, kafka_topics, [(sender, "org-a"), (unit, "org-a")])
        sent = alert("org-a", sent_by="disp-1", incident_id="inc-9")
        await produce_events(kafka_producer, kafka_topics, [sent])
        delivery = sent["event_id"]
        await unit.wait_for("alert_created")
        assert (await answer(unit, delivery, "acknowledged", response="on scene"))["ok"]
        gw1.stop()  # SIGKILL, right after the ack
        topic = kafka_topics.for_type(receipts.RECEIPT_TYPE)

        def acknowledged(docs: list[dict[str, Any]]) -> bool:
            return any(
                d["data"]["kind"] == "acknowledged" and d["data"]["delivery_id"] == sent["event_id"]
                for d in docs
            )

        docs = await read_topic(kafka_topics.bootstrap, topic, acknowledged)
        [ack] = [d for d in docs if d["data"]["kind"] == "acknowledged"]
        assert ack["organization_id"] == "org-a"
        expected = {"recipient": "unit-b", "response": "on scene", "incident_id": "inc-9"}
        assert expected.items() <= ack["data"].items()

        # and the sender, on the gateway that lives, saw it live
        def seen() -> bool:
            return any(r["data"]["kind"] == "acknowledged" for r in receipts_of(sender, delivery))

        await wait_until(seen, WAIT_S, "ack at the sender")
