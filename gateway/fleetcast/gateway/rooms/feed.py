"""An org channel's pub/sub messages, decoded and handed to delivery.

The listener (redis/listener.py) passes every message of an org channel here
as bytes. A message that cannot be read, or that claims another org than its
channel's, is counted and dropped; one event whose delivery fails never stops
the rest of its message.
"""

from __future__ import annotations

from typing import Protocol

import structlog

from fleetcast.gateway.metrics import Metrics
from fleetcast.protocol import wire

log = structlog.stdlib.get_logger(__name__)


class Deliverer(Protocol):
    """Where the events of a message go (delivery.Delivery)."""

    def deliver(self, org: str, routed: wire.RoutedEvent) -> int: ...


class Feed:
    """Decodes org-channel messages and delivers their events."""

    def __init__(self, delivery: Deliverer, metrics: Metrics) -> None:
        self._delivery = delivery
        self._metrics = metrics

    def on_message(self, org: str, data: bytes) -> None:
        try:
            message_org, batch = wire.decode(data)
        except wire.WireError as exc:
            self._metrics.wire_errors.inc()
            log.warning("unreadable pub/sub message", org=org, error=str(exc))
            return
        if message_org != org:
            self._metrics.wire_errors.inc()
            log.warning("message of another org dropped", org=org, message_org=message_org)
            return
        for routed in batch:
            try:
                self._delivery.deliver(org, routed)
            except Exception:  # one bad event never stops the listener
                self._metrics.wire_errors.inc()
                log.exception("delivery failed", org=org)
