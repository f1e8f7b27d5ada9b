"""The operator's pod prober against a real gateway and a real consumer (real Redis and Kafka).

On the test control plane the pods are simulated, so BackendsReachable and the
live counters are proven here, against the very endpoints the pods serve:
the gateway's /stats, the consumer's /ready and /metrics. The prober is
pointed at them as it would be at pod IPs.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import AIOKafkaProducer

from fleetcast.devtools.ports import free_port
from fleetcast.operator import backends, probing
from tests.harness.gateway import Client, gateway_settings, make_token, start_gateway
from tests.harness.kafka import (
    KafkaTopics,
    consumer_settings,
    produce_events,
    running_consumer,
    scrape,
)

pytestmark = pytest.mark.integration

KEY = ("fleet", "dispatch")


def target(pod: str, component: backends.Component, port: int) -> probing.Target:
    return probing.Target(KEY, pod, component, "127.0.0.1", port)


async def lag_reported(port: int) -> None:
    """Until the consumer has read a batch (lag is per partition, as of its last batch)."""
    for _ in range(200):
        if any(k.startswith("fleetcast_consumer_lag{") for k in await scrape(port)):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the consumer reports no lag")


async def test_the_pods_own_figures_make_backends_reachable_and_the_counters(
    kafka_topics: KafkaTopics, kafka_producer: AIOKafkaProducer, redis_url: str
) -> None:
    gateway = await start_gateway(gateway_settings(redis_url))
    client = Client(gateway.url)
    event = {
        "event_id": "e-1",
        "event_type": "alert_created",
        "organization_id": "o1",
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": {"alert_id": "a-1"},
    }
    try:
        assert await client.connect(make_token())
        async with running_consumer(consumer_settings(kafka_topics, redis_url)) as consumer:
            await produce_events(kafka_producer, kafka_topics, [event])
            await lag_reported(consumer.consumer_port)
            found = await probing.ask_all(
                [
                    target("dispatch-gateway-a", "gateway", gateway.port),
                    target("dispatch-consumer-a", "consumer", consumer.consumer_port),
                    target("dispatch-gateway-gone", "gateway", free_port()),
                ]
            )
        reports = found[KEY]
        by_pod = {r.pod: r for r in reports}
        assert by_pod["dispatch-gateway-a"].answered
        assert by_pod["dispatch-gateway-a"].redis is True
        assert by_pod["dispatch-gateway-a"].connections == 1
        consumer_report = by_pod["dispatch-consumer-a"]
        assert (consumer_report.kafka, consumer_report.redis) == (True, True)
        assert consumer_report.lag == 0  # the one record is read
        silent = by_pod["dispatch-gateway-gone"]
        assert not silent.answered
        assert "Connect" in silent.error

        condition = backends.condition(reports, 1, enabled=True)
        assert (condition.status, condition.reason) == ("True", "Reachable")
        counters = backends.counters(reports)
        assert counters["gateway"]["connections"] == 1
        assert counters["consumer"]["lag"] == consumer_report.lag
    finally:
        await client.close()
        await gateway.stop()


async def test_a_draining_gateway_is_not_counted_as_reaching_redis(redis_url: str) -> None:
    gateway = await start_gateway(gateway_settings(redis_url))
    try:
        gateway.gateway.closer.draining = True  # what SIGTERM sets before the hand-over
        (report,) = (await probing.ask_all([target("g", "gateway", gateway.port)]))[KEY]
        assert report.answered
        assert report.draining
        assert report.redis is None
        found = backends.condition([report], 1, enabled=True)
        assert (found.status, found.reason) == ("Unknown", "NoAnswer")
    finally:
        gateway.gateway.closer.draining = False
        await gateway.stop()
