"""One event's trace in a real Jaeger: producer -> consumer -> gateway, as one trace.

A Kafka record is produced with the W3C ``traceparent`` of a producer span
(this test's own tracer, exporting to the same Jaeger); the real consumer
and a real gateway process, switched on by the standard OTEL_* variables
only, export their spans over OTLP/HTTP. Jaeger's query API must then hold
one trace with the three spans, each the child of the one before, and the
gateway's span must say how many clients got the event.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from fleetcast.common import tracing
from fleetcast.devtools.jaeger import JaegerServer as Jaeger
from fleetcast.protocol import events
from tests.harness.gateway import SECRET, Client, GatewayProcess, make_token, wait_until
from tests.harness.kafka import KafkaTopics, consumer_settings, running_consumer

pytestmark = pytest.mark.integration

WAIT_S = 30.0
_serial = itertools.count()


def otel_env(jaeger: Jaeger) -> dict[str, str]:
    """The standard variables that switch a fleetcast process's traces on (short export delay)."""
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": jaeger.otlp_endpoint,
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    }


def producer_tracer(jaeger: Jaeger) -> tuple[trace.Tracer, TracerProvider]:
    provider = TracerProvider(resource=Resource.create({"service.name": "test-producer"}))
    exporter = OTLPSpanExporter(endpoint=f"{jaeger.otlp_endpoint}/v1/traces")
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider.get_tracer("test"), provider


def alert(org: str) -> dict[str, Any]:
    return {
        "event_id": f"traced-{next(_serial)}",
        "event_type": "alert_created",
        "organization_id": org,
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": {"alert_id": "al-1"},
    }


def spans_by_service(found: dict[str, Any]) -> dict[str, dict[str, Any]]:
    processes = {key: p["serviceName"] for key, p in found["processes"].items()}
    return {processes[span["processID"]]: span for span in found["spans"]}


def parent_of(span: dict[str, Any]) -> str | None:
    refs = [r["spanID"] for r in span.get("references", []) if r["refType"] == "CHILD_OF"]
    return refs[0] if refs else None


def tags(span: dict[str, Any]) -> dict[str, Any]:
    return {tag["key"]: tag["value"] for tag in span["tags"]}


async def test_a_traced_record_is_one_trace_from_producer_to_gateway(
    jaeger: Jaeger,
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
    tmp_path: Path,
    clients: Callable[..., Client],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in otel_env(jaeger).items():
        monkeypatch.setenv(name, value)  # the consumer runs in this process
    gateway = GatewayProcess(
        {"FLEETCAST_JWT_SECRET": SECRET, "FLEETCAST_REDIS_URL": redis_url, **otel_env(jaeger)},
        tmp_path,
    ).start()
    tracer, provider = producer_tracer(jaeger)
    try:
        async with running_consumer(consumer_settings(kafka_topics, redis_url)):
            await gateway.wait_ready(within=60)
            client = clients(gateway.url)
            assert await client.connect(make_token("disp-1", "org-t", ("dispatcher",), ttl=600))
            # untraced warm-up until the gateway listens for the org (a record without
            # traceparent: its priority event gets a root span of its own)
            warm = alert("org-t")
            topic = kafka_topics.for_type("alert_created")
            await kafka_producer.send_and_wait(topic, orjson.dumps(warm), key=b"org-t")
            await wait_until(lambda: delivered(client) >= 1, WAIT_S, "the warm-up alert")

            with tracer.start_as_current_span("produce alert", kind=trace.SpanKind.PRODUCER):
                context = trace.get_current_span().get_span_context()
                traceparent = tracing.format_traceparent(context.trace_id, context.span_id)
                await kafka_producer.send_and_wait(
                    topic,
                    orjson.dumps(alert("org-t")),
                    key=b"org-t",
                    headers=[("traceparent", traceparent.encode())],
                )
            await wait_until(lambda: delivered(client) >= 2, WAIT_S, "the traced alert")
            payload = [d for n, d in client.events if n == "alert_created"][-1]
            assert "tp" not in payload  # the trace context never reaches a client
            found = await trace_with(jaeger, context.trace_id, services=3)
    finally:
        provider.shutdown()
        gateway.stop()

    spans = spans_by_service(found)
    assert set(spans) == {"test-producer", "fleetcast-consumer", "fleetcast-gateway"}
    producer, consumer, delivery = (
        spans[name] for name in ("test-producer", "fleetcast-consumer", "fleetcast-gateway")
    )
    assert parent_of(consumer) == producer["spanID"]
    assert parent_of(delivery) == consumer["spanID"]
    assert consumer["operationName"] == "fleetcast.consume"
    assert delivery["operationName"] == "fleetcast.deliver"
    delivered_tags = tags(delivery)
    assert delivered_tags["fleetcast.recipients"] == 1
    assert delivered_tags["fleetcast.org"] == "org-t"
    assert delivered_tags["fleetcast.event_type"] == "alert_created"
    assert tags(consumer)["messaging.destination.name"] == topic


def delivered(client: Client) -> int:
    return sum(1 for name, _ in client.events if name in events.EVENT_TYPES)


async def trace_with(jaeger: Jaeger, trace_id: int, services: int) -> dict[str, Any]:
    """The trace once spans of ``services`` services are in it (exports are batched)."""
    deadline = time.monotonic() + WAIT_S
    found: dict[str, Any] | None = None
    while time.monotonic() < deadline:
        found = await asyncio.to_thread(jaeger.trace, trace_id)
        if found is not None and len(found["processes"]) >= services:
            return found
        await asyncio.sleep(0.3)
    raise AssertionError(f"trace {trace_id:032x} incomplete in Jaeger after {WAIT_S} s: {found}")
