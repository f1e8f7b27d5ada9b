"""The gateway's delivery spans: one per traced event per gateway, never one per recipient.

The consumer traced the event and wrote its span's context into the wire
item (``tp``, protocol/wire.py); an item without it (the usual case: an
unsampled position) goes straight to delivery and costs nothing here. The
span covers this gateway's fan-out of the event (frames made and handed to
each recipient's outbox) and says how many connections got it.
"""

from __future__ import annotations

from typing import Final, Protocol

from opentelemetry.trace import SpanKind

from fleetcast.common import tracing
from fleetcast.protocol import rooms, wire

#: The span's name: what the gateway did with the event.
SPAN_NAME: Final = "fleetcast.deliver"


class Deliverer(Protocol):
    def deliver(self, org: str, routed: wire.RoutedEvent) -> int: ...


class DeliveryTracer:
    """Wraps one traced event's delivery in a span with what a person searches it by."""

    def __init__(self, traces: tracing.Tracing, gateway_id: str) -> None:
        self._traces = traces
        self._gateway_id = gateway_id

    def deliver(self, org: str, routed: wire.RoutedEvent, delivery: Deliverer) -> int:
        parent = tracing.parse_traceparent(
            routed.traceparent if isinstance(routed.traceparent, str) else None
        )
        if parent is None:  # a malformed context is not worth a root span per event
            return delivery.deliver(org, routed)
        event = routed.event
        names = [rooms.client_name(name, org) for name in routed.rooms]
        with self._traces.tracer.start_as_current_span(
            SPAN_NAME,
            context=tracing.context_of(parent),
            kind=SpanKind.CONSUMER,
            attributes={
                "fleetcast.event_type": str(event.get("event_type")),
                "fleetcast.event_id": str(event.get("event_id")),
                "fleetcast.org": org,
                # Strings, not a list: the SDK checks a list attribute item by item.
                "fleetcast.room": names[0] if names else "",
                "fleetcast.rooms": ",".join(names),
                "fleetcast.gateway": self._gateway_id,
            },
        ) as span:
            count = delivery.deliver(org, routed)
            span.set_attribute("fleetcast.recipients", count)
            return count
