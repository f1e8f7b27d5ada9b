"""The fleet map through the whole path: Kafka -> consumer -> Redis -> gateway -> a console.

Positions and statuses are produced to a real Kafka broker and go through the
real consumer (which keeps the fleet snapshot in Redis in the same script
that publishes); a console that subscribes to ``fleet`` afterwards gets the
snapshot from Redis (the gateway never reads Kafka), then conflated batches;
a status change reaches it at once; an alert is delivered while positions
stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from aiokafka import AIOKafkaProducer

from tests.harness.gateway import Client, gateway_settings, make_token, start_gateway, wait_until
from tests.harness.kafka import KafkaTopics, consumer_settings, produce_events, running_consumer
from tests.integration.fleet_support import alert, fleet_view, position, status

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]
ORG = "org-map"


async def test_snapshot_and_batches_through_kafka(
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
    clients: ClientFactory,
) -> None:
    running = await start_gateway(gateway_settings(redis_url, fleet_batch_ms=250))
    try:
        async with running_consumer(consumer_settings(kafka_topics, redis_url)):
            first = [position(ORG, f"u{i}", 1) for i in range(20)]
            first.append(status(ORG, "u3", "on_scene"))
            first.append(position("org-other", "x1", 1))
            await produce_events(kafka_producer, kafka_topics, first)
            console = clients(running.url)
            assert await console.connect(make_token("console", ORG))
            # the consumer may still be writing: subscribe until the snapshot holds all 20
            for _ in range(100):
                ack = await console.call("subscribe", {"room": "fleet"})
                if ack["snapshot"]["assets"] == 20:
                    break
                await asyncio.sleep(0.1)
            assert ack == {
                "ok": True,
                "room": "fleet",
                "snapshot": {"assets": 20, "complete": True},
            }
            snapshot = console.received("fleet_snapshot")[-1]
            assert {p["asset_id"] for p in snapshot["data"]["positions"]} == {
                f"u{i}" for i in range(20)
            }
            assert [(s["asset_id"], s["status"]) for s in snapshot["data"]["statuses"]] == [
                ("u3", "on_scene")
            ]
            await produce_events(
                kafka_producer,
                kafka_topics,
                [position(ORG, "u1", seq) for seq in range(2, 40)]
                + [alert(ORG, 1), status(ORG, "u1", "en_route")],
            )
            await console.wait_for("alert_created")
            await wait_until(
                lambda: any(
                    c["data"] == {"asset_id": "u1", "status": "en_route"}
                    for c in console.received("asset_status_changed")
                ),
                what="u1's status change",
            )
            await console.wait_for("asset_positions")
            await asyncio.sleep(0.6)  # one more interval: nothing left behind
            events = [
                (n, d) for n, d in console.events if n in ("fleet_snapshot", "asset_positions")
            ]
            view = fleet_view(events)
            assert view["u1"]["seq"] == 39
            assert set(view) == {f"u{i}" for i in range(20)}
            batched = [
                p["seq"]
                for n, d in events
                if n == "asset_positions"
                for p in d["data"]["positions"]
            ]
            assert len(batched) < 38  # conflated: far fewer entries than positions produced
            assert console.received("asset_position_updated") == []
    finally:
        await running.stop()
