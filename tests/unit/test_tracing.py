"""Traces: the OTEL_* settings, traceparent parsing, sampling, and the two span hooks.

The hooks run against the real OpenTelemetry SDK with its in-memory exporter
(the SDK is a library, not a service; the Jaeger round trip is
tests/integration/test_tracing_jaeger.py).
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from fleetcast.common import tracing
from fleetcast.consumer import processing
from fleetcast.consumer import settings as consumer_settings
from fleetcast.consumer import tracing as consumer_tracing
from fleetcast.gateway.rooms import tracing as gateway_tracing
from fleetcast.protocol import routing, wire

TRACE_ID = 0x0AF7651916CD43DD8448EB211C80319C
SPAN_ID = 0xB7AD6B7169203331
TRACEPARENT = f"00-{TRACE_ID:032x}-{SPAN_ID:016x}-01"


def test_off_by_default_and_on_by_the_standard_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    assert not consumer_settings.Settings().tracing_enabled
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")
    monkeypatch.setenv("OTEL_TRACES_SAMPLER_ARG", "0.25")
    settings = consumer_settings.Settings()
    assert settings.tracing_enabled
    assert settings.traces_endpoint() == "http://collector:4318/v1/traces"
    assert settings.otel_traces_sampler_arg == 0.25
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert not consumer_settings.Settings().tracing_enabled


def test_a_bad_otel_variable_is_named_as_it_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from fleetcast.common import settings as loading

    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    with pytest.raises(ValidationError) as caught:
        consumer_settings.Settings()
    assert "  OTEL_EXPORTER_OTLP_PROTOCOL: " in loading.describe("consumer", caught.value)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",  # unknown version
        "00-00000000000000000000000000000000-b7ad6b7169203331-01",  # zero trace id
        "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",  # zero span id
        "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",  # upper case
    ],
)
def test_a_malformed_traceparent_is_no_parent(value: str | None) -> None:
    assert tracing.parse_traceparent(value) is None


def test_a_traceparent_round_trips() -> None:
    parent = tracing.parse_traceparent(TRACEPARENT.encode())
    assert parent == tracing.Parent(TRACE_ID, SPAN_ID, sampled=True)
    assert tracing.format_traceparent(TRACE_ID, SPAN_ID) == TRACEPARENT


def test_every_priority_event_and_a_ratio_of_positions_are_sampled() -> None:
    assert tracing.sampled("alert_created", None, 0.0)
    assert not tracing.sampled("asset_position_updated", None, 0.0)
    assert tracing.sampled("asset_position_updated", None, 1.0)
    assert tracing.sampled("asset_position_updated", None, 0.5, draw=lambda: 0.49)
    assert not tracing.sampled("asset_position_updated", None, 0.5, draw=lambda: 0.5)
    # with a producer's trace id, the decision is the id's, as in every service
    low = tracing.Parent(1 << 64 | 5, SPAN_ID, True)
    high = tracing.Parent((1 << 64) - 1, SPAN_ID, True)
    assert tracing.sampled("asset_position_updated", low, 0.01)
    assert not tracing.sampled("asset_position_updated", high, 0.01)


def test_setup_leaves_tracing_off_without_an_exporter() -> None:
    assert tracing.setup(consumer_settings.Settings(), "fleetcast-consumer", "c-1") is None


@pytest.fixture
def traced() -> tuple[tracing.Tracing, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return tracing.Tracing(provider.get_tracer("test"), provider, 0.0), exporter


class Rec:
    def __init__(self, doc: dict[str, Any], offset: int, headers: Any = ()) -> None:
        self.value, self.offset, self.partition, self.topic = orjson.dumps(doc), offset, 0, "t"
        self.key, self.headers = None, headers


def doc(event_type: str, n: int, **data: Any) -> dict[str, Any]:
    return {
        "event_id": f"e-{n}",
        "event_type": event_type,
        "organization_id": "org-1",
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": data,
    }


def test_the_consumer_spans_sampled_events_as_children_of_their_records(
    traced: tuple[tracing.Tracing, InMemorySpanExporter],
) -> None:
    traces, exporter = traced
    records = [
        Rec(doc("alert_created", 1), 1, [("traceparent", TRACEPARENT.encode())]),
        Rec(doc("asset_position_updated", 2, asset_id="u-1"), 2),  # ratio 0: not traced
        Rec(doc("incident_created", 3, incident_id="i-1"), 3),  # no header: a new root
    ]
    polled = processing.group(records)
    batch = processing.prepare(polled, processing.Router(routing.RoutingTable.default()))
    tracer = consumer_tracing.BatchTracer(traces)
    spans = tracer.begin(batch, polled)
    alert, position, incident = batch.routed
    assert position.traceparent is None
    consumer_tracing.BatchTracer.end(spans, published=True)
    child, root = exporter.get_finished_spans()
    assert child.parent is not None
    assert child.parent.span_id == SPAN_ID
    assert child.context.trace_id == TRACE_ID
    assert alert.traceparent == tracing.format_traceparent(TRACE_ID, child.context.span_id)
    assert root.parent is None
    assert incident.traceparent is not None
    assert child.attributes is not None
    assert child.attributes["fleetcast.event_id"] == "e-1"
    assert child.attributes["fleetcast.org"] == "org-1"
    assert child.attributes["messaging.kafka.offset"] == 1
    assert child.attributes["fleetcast.published"] is True


def test_the_gateway_makes_one_delivery_span_with_the_recipient_count(
    traced: tuple[tracing.Tracing, InMemorySpanExporter],
) -> None:
    traces, exporter = traced

    class Fanout:
        def deliver(self, org: str, routed: wire.RoutedEvent) -> int:
            return 42

    event = doc("alert_created", 1)
    routed = wire.RoutedEvent(("org:org-1",), {}, event, TRACEPARENT)
    tracer = gateway_tracing.DeliveryTracer(traces, "gw-1")
    assert tracer.deliver("org-1", routed, Fanout()) == 42
    (span,) = exporter.get_finished_spans()
    assert span.parent is not None
    assert span.parent.span_id == SPAN_ID
    assert span.attributes is not None
    assert span.attributes["fleetcast.recipients"] == 42
    assert span.attributes["fleetcast.gateway"] == "gw-1"
    assert span.attributes["fleetcast.room"] == "org"
    assert span.attributes["fleetcast.event_type"] == "alert_created"
    # a malformed context: delivered all the same, no span
    assert tracer.deliver("org-1", wire.RoutedEvent(("org:org-1",), {}, event, "x"), Fanout())
    assert len(exporter.get_finished_spans()) == 1
