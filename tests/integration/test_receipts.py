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
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from fleetcast.protocol import receipts
from tests.harness.gateway import Client, make_token, wait_until
from tests.harness.kafka import KafkaTopics, produce_events
from tests.integration.receipts_support import (
    WAIT_S,
    alert,
    alerts,
    answer,
    connect,
    read_topic,
    receipts_of,
    two_gateways,
    warm_up,
)

pytestmark = pytest.mark.integration


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


async def test_the_cli_client_answers_delivered_displayed_and_acknowledged(
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
    tmp_path: Path,
    clients: Callable[..., Client],
) -> None:
    from tests.integration.test_client_cli import Cli  # the CLI as a user runs it

    async with two_gateways(kafka_topics, redis_url, tmp_path) as (gw0, gw1):
        sender = await connect(clients, gw0.url, "disp-1", "org-a", "dispatcher")
        token = make_token("unit-c", "org-a", ("field_unit",), ttl=600)
        argv = ("--url", gw1.url, "--token", token, "--json", "--ack", "en route")
        async with Cli(*argv) as cli:
            await cli.wait_status("session")
            await warm_up(kafka_producer, kafka_topics, [(sender, "org-a")])
            sent = alert("org-a", sent_by="disp-1")
            await produce_events(kafka_producer, kafka_topics, [sent])

            def answered() -> set[str]:
                return {
                    r["data"]["kind"]
                    for r in receipts_of(sender, sent["event_id"])
                    if r["data"].get("recipient") == "unit-c"
                }

            await wait_until(
                lambda: answered() == set(receipts.CLIENT_KINDS), WAIT_S, "cli receipts"
            )
        [ack] = [
            r for r in receipts_of(sender, sent["event_id"]) if r["data"]["kind"] == "acknowledged"
        ]
        assert ack["data"]["response"] == "en route"
