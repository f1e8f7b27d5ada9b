"""An org channel's pub/sub messages, decoded and handed to delivery.

The listener (redis/listener.py) passes every message of an org channel here
as bytes. Its number goes to the gap watch first (recovery.py), then its
events to delivery. A message that cannot be read, or that claims another org
than its channel's, is counted and dropped; one event whose delivery fails
never stops the rest of its message.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.tracing import DeliveryTracer
from fleetcast.protocol import wire

log = structlog.stdlib.get_logger(__name__)


class Deliverer(Protocol):
    """Where the events of a message go (delivery.Delivery)."""

    def deliver(self, org: str, routed: wire.RoutedEvent) -> int: ...


class Numbering(Protocol):
    """Watches the org's message numbers for gaps (recovery.GapWatch)."""

    def observe(self, org: str, seq: int | None) -> None: ...


class Feed:
    """Decodes org-channel messages, checks their numbering, delivers their events."""

    def __init__(
        self,
        delivery: Deliverer,
        watch: Numbering,
        metrics: Metrics,
        tracer: DeliveryTracer | None = None,
    ) -> None:
        self._delivery = delivery
        self._watch = watch
        self._metrics = metrics
        self._tracer = tracer

    def on_message(self, org: str, data: bytes) -> None:
        try:
            message = wire.decode_message(data)
        except wire.WireError as exc:
            self._metrics.wire_errors.inc()
            log.warning("unreadable pub/sub message", org=org, error=str(exc))
            return
        if message.org != org:
            self._metrics.wire_errors.inc()
            log.warning("message of another org dropped", org=org, message_org=message.org)
            return
        # Before the events: a gap pauses the org, so they wait behind the recovery.
        self._watch.observe(org, message.seq)
        for routed in message.events:
            try:
                if routed.traceparent is not None and self._tracer is not None:
                    self._tracer.deliver(org, routed, self._delivery)
                else:
                    self._delivery.deliver(org, routed)
            except Exception:  # one bad event never stops the listener
                self._metrics.wire_errors.inc()
                log.exception("delivery failed", org=org)
