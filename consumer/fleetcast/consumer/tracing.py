"""The consumer's spans: one per sampled event, from its Kafka record to Redis.

A hook around the pipeline, not part of it: :meth:`BatchTracer.begin` runs
after a poll is routed and before it is encoded, so a traced event's wire
item carries its span's context (``tp``, protocol/wire.py); :meth:`end`
runs once Redis accepted the batch (or it was dropped by a rebalance), so a
span lasts from the poll to the publish. With tracing off the pipeline has
no tracer and nothing here runs.

The span is the child of the record's ``traceparent`` header when it has
one (the producer's span), otherwise a new root.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson
from opentelemetry.trace import SpanKind, Status, StatusCode

from fleetcast.common import tracing
from fleetcast.consumer import processing

#: The span's name: what the consumer did with the event.
SPAN_NAME = "fleetcast.consume"


@dataclass(slots=True)
class Spans:
    """The spans one batch opened; ended together when the batch is published."""

    open: list[Any] = field(default_factory=list)


def parents(polled: Mapping[Any, Sequence[Any]]) -> dict[tuple[str, int, int], bytes]:
    """(topic, partition, offset) -> traceparent header, for the records that have one."""
    found: dict[tuple[str, int, int], bytes] = {}
    for records in polled.values():
        for record in records:
            headers = getattr(record, "headers", None)
            if headers:
                value = tracing.header(headers)
                if value is not None:
                    found[(record.topic, record.partition, record.offset)] = value
    return found


def attributes(item: processing.Routed) -> dict[str, Any]:
    """What a person searches a consumer span by (OpenTelemetry messaging names, and ours)."""
    try:
        event_id = orjson.loads(item.envelope_json).get("event_id")
    except orjson.JSONDecodeError:  # cannot happen for a routed event; never fatal
        event_id = None
    return {
        "messaging.system": "kafka",
        "messaging.operation.type": "process",
        "messaging.destination.name": item.topic,
        "messaging.destination.partition.id": str(item.partition),
        "messaging.kafka.offset": item.offset,
        "fleetcast.event_type": item.event_type,
        "fleetcast.event_id": str(event_id),
        "fleetcast.org": item.org,
        # Strings, not a list: the SDK checks a list attribute item by item.
        "fleetcast.room": item.rooms[0],
        "fleetcast.rooms": ",".join(item.rooms),
    }


class BatchTracer:
    """Opens a span for each sampled event of a batch, and ends them after the publish."""

    def __init__(self, traces: tracing.Tracing) -> None:
        self._traces = traces

    def begin(self, batch: processing.Batch, polled: Mapping[Any, Sequence[Any]]) -> Spans | None:
        """Open the sampled events' spans and set their ``traceparent``; None if none is."""
        headers = parents(polled)
        spans = Spans()
        for item in batch.routed:
            parent = tracing.parse_traceparent(
                headers.get((item.topic, item.partition, item.offset))
            )
            if not self._traces.sampled(item.event_type, parent):
                continue
            span = self._traces.tracer.start_span(
                SPAN_NAME,
                context=tracing.context_of(parent),
                kind=SpanKind.CONSUMER,
                attributes=attributes(item),
            )
            item.traceparent = tracing.traceparent_of(span)
            spans.open.append(span)
        return spans if spans.open else None

    @staticmethod
    def end(spans: Spans | None, published: bool) -> None:
        """End a batch's spans: published to Redis, or dropped (redelivered by Kafka later)."""
        if spans is None:
            return
        for span in spans.open:
            span.set_attribute("fleetcast.published", published)
            if not published:
                span.set_status(Status(StatusCode.ERROR, "not published (rebalance or shutdown)"))
            span.end()
