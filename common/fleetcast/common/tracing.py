"""OpenTelemetry traces of an event's way through fleetcast: settings, sampling, set-up.

Off by default. The standard ``OTEL_*`` variables switch it on
(``OTEL_TRACES_EXPORTER=otlp`` and an OTLP endpoint), so a platform that
already injects them into every pod gets fleetcast's traces with no
fleetcast-specific setting; the FleetBroadcast spec's ``tracing`` renders the
same variables.

The hot path pays for a trace only when an event is sampled, and the
decision is taken here, before any span exists (so an unsampled event costs
one comparison, not a span that is made and dropped):

- every priority event (alerts, incidents, tasks, transmissions: what a
  dispatcher asks "why was this late" about) is traced;
- a position (96-98% of all events) is traced with probability
  ``OTEL_TRACES_SAMPLER_ARG`` (default 0.01), decided on its trace id when
  the producer sent one, so every service keeps or drops the same traces.

The consumer makes one span per sampled event, the child of the Kafka
record's ``traceparent`` header (or a new root), and writes its context into
the Redis wire message (protocol/wire.py's ``tp``); each gateway makes one
delivery span per such event, never one per recipient.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SimpleSpanProcessor,
)
from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags
from pydantic import Field
from pydantic_settings import BaseSettings

from fleetcast.protocol import events

#: The W3C trace context header (Kafka record header and wire field content).
TRACEPARENT: Final = "traceparent"
#: version 00, 32 hex trace id, 16 hex span id, 2 hex flags (W3C Trace Context, level 1).
_TRACEPARENT_RE: Final = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
#: The low 64 bits of a trace id, compared with ratio * 2**64 (as TraceIdRatioBased does).
_LOW_64: Final = (1 << 64) - 1
#: Default share of positions traced: a few per second at a city's 2,500 units.
DEFAULT_POSITION_RATIO: Final = 0.01


class TracingSettings(BaseSettings):
    """The ``OTEL_*`` variables fleetcast reads (a mixin of each component's settings).

    Named as the OpenTelemetry specification names them, without the
    ``FLEETCAST_`` prefix. The OTLP exporter itself also reads its own
    ``OTEL_EXPORTER_OTLP_*`` variables (headers, timeout, certificate).
    """

    #: "true" switches the SDK off whatever else is set (the specification's kill switch).
    otel_sdk_disabled: bool = Field(default=False, validation_alias="OTEL_SDK_DISABLED")
    #: "otlp" exports over OTLP/HTTP, "console" prints spans (debugging), "none"
    #: (the default: tracing is opt-in) makes no spans at all.
    otel_traces_exporter: Literal["none", "otlp", "console"] = Field(
        default="none", validation_alias="OTEL_TRACES_EXPORTER"
    )
    #: Full URL of the traces endpoint (wins over OTEL_EXPORTER_OTLP_ENDPOINT).
    otel_exporter_otlp_traces_endpoint: str | None = Field(
        default=None, validation_alias="OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
    )
    #: Base URL of the OTLP receiver; ``/v1/traces`` is appended.
    otel_exporter_otlp_endpoint: str = Field(
        default="http://localhost:4318", validation_alias="OTEL_EXPORTER_OTLP_ENDPOINT"
    )
    #: Only OTLP over HTTP with protobuf is shipped (no gRPC stack in the image).
    otel_exporter_otlp_protocol: Literal["http/protobuf"] = Field(
        default="http/protobuf",
        validation_alias="OTEL_EXPORTER_OTLP_PROTOCOL",
    )
    #: The service name spans carry (default: fleetcast-gateway / fleetcast-consumer).
    otel_service_name: str | None = Field(default=None, validation_alias="OTEL_SERVICE_NAME")
    #: Share of positions traced (0 to 1); priority events are always traced.
    otel_traces_sampler_arg: float = Field(
        default=DEFAULT_POSITION_RATIO, ge=0, le=1, validation_alias="OTEL_TRACES_SAMPLER_ARG"
    )

    @property
    def tracing_enabled(self) -> bool:
        return not self.otel_sdk_disabled and self.otel_traces_exporter != "none"

    def traces_endpoint(self) -> str:
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint
        return self.otel_exporter_otlp_endpoint.rstrip("/") + "/v1/traces"


# --- pure: trace context and sampling ------------------------------------------------


@dataclass(frozen=True, slots=True)
class Parent:
    """A parsed ``traceparent``."""

    trace_id: int
    span_id: int
    sampled: bool


def parse_traceparent(value: str | bytes | None) -> Parent | None:
    """A W3C ``traceparent`` (version 00), or None when absent or malformed.

    A malformed header is not an error of the event: its trace starts anew.
    """
    if isinstance(value, bytes):
        value = value.decode("ascii", errors="replace")
    if not value:
        return None
    match = _TRACEPARENT_RE.fullmatch(value.strip())
    if match is None:
        return None
    trace_id, span_id = int(match[1], 16), int(match[2], 16)
    if trace_id == 0 or span_id == 0:  # all-zero ids are invalid (W3C 3.2.2.3)
        return None
    return Parent(trace_id, span_id, bool(int(match[3], 16) & 1))


def format_traceparent(trace_id: int, span_id: int, sampled: bool = True) -> str:
    return f"00-{trace_id:032x}-{span_id:016x}-{'01' if sampled else '00'}"


def header(headers: Any) -> bytes | None:
    """The ``traceparent`` of a Kafka record's headers (a sequence of (key, value))."""
    for key, value in headers or ():
        if key == TRACEPARENT:
            return value if isinstance(value, bytes) else None
    return None


def sampled(
    event_type: str,
    parent: Parent | None,
    position_ratio: float,
    draw: Callable[[], float] = random.random,
) -> bool:
    """Whether this event is traced: every priority event, ``position_ratio`` of positions."""
    if events.is_priority(event_type):
        return True
    if parent is not None:
        return (parent.trace_id & _LOW_64) < position_ratio * (1 << 64)
    return draw() < position_ratio


def context_of(parent: Parent | None) -> Any:
    """The OpenTelemetry context a child of ``parent`` starts in (None: a new root)."""
    if parent is None:
        return None
    span_context = SpanContext(
        parent.trace_id,
        parent.span_id,
        is_remote=True,
        trace_flags=TraceFlags(TraceFlags.SAMPLED),
    )
    return trace.set_span_in_context(NonRecordingSpan(span_context))


def traceparent_of(span: Any) -> str:
    """The ``traceparent`` naming ``span`` as the parent (for the wire message)."""
    context = span.get_span_context()
    return format_traceparent(context.trace_id, context.span_id)


# --- set-up -------------------------------------------------------------------------


@dataclass(slots=True)
class Tracing:
    """A process's tracer and its sampling ratio; built once by the composition root."""

    tracer: trace.Tracer
    provider: TracerProvider
    position_ratio: float

    def sampled(self, event_type: str, parent: Parent | None) -> bool:
        return sampled(event_type, parent, self.position_ratio)

    def shutdown(self) -> None:
        """Export what is buffered (bounded by the processor's timeout), then stop."""
        self.provider.shutdown()


def setup(
    settings: TracingSettings,
    service: str,
    instance: str,
    attributes: Mapping[str, str] | None = None,
) -> Tracing | None:
    """The process's tracing, or None when the settings leave it off.

    Its own provider, not the global one: nothing else in the process (a
    library instrumenting itself) starts exporting because fleetcast traces.
    """
    if not settings.tracing_enabled:
        return None
    resource = Resource.create(
        {
            "service.name": settings.otel_service_name or service,
            "service.instance.id": instance,
            **(attributes or {}),
        }
    )
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(_processor(settings))
    return Tracing(provider.get_tracer("fleetcast"), provider, settings.otel_traces_sampler_arg)


def _processor(settings: TracingSettings) -> SpanProcessor:
    """Spans leave in batches from the SDK's own thread: the event loop never waits on export."""
    if settings.otel_traces_exporter == "console":
        return SimpleSpanProcessor(ConsoleSpanExporter())
    return BatchSpanProcessor(OTLPSpanExporter(endpoint=settings.traces_endpoint()))
