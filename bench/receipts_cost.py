"""Receipts at the gateway, in-process: CPU of noting and flushing sent facts, of a receipt.

Not a `make bench` scenario yet: the gateway's own code with a recording sink
instead of the Kafka client, one alert to 2,000 connections of one pod.
Run: ``.venv/bin/python bench/receipts_cost.py``.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fleetcast.gateway.edge.auth import Claims
from fleetcast.gateway.edge.clients import Client
from fleetcast.gateway.edge.limits import TokenBucket
from fleetcast.gateway.edge.receipts import Desk, SentFlusher
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.outbox import Outbox, Transport
from fleetcast.gateway.rooms.receipting import ReceiptingTransport
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol.wire import RoutedEvent

CONNECTIONS, ALERTS = 2000, 20
ALERT: dict[str, Any] = {
    "event_id": "org-a-alert-000123", "event_type": "alert_created", "organization_id": "org-a",
    "occurred_at": "2026-11-25T18:00:00Z",
    "data": {"alert_id": "alert-000123", "asset_id": "u-7", "kind": "officer_down",
             "severity": "critical", "sent_by": "disp-1", "incident_id": "inc-9"},
}  # fmt: skip


class Wire:
    def offer(self, conn: Connection, frame: Frame) -> bool:
        return True

    def write(self, conn: Connection, text: str) -> bool:
        return True


class Sink:
    def __init__(self) -> None:
        self.bytes = self.records = 0

    async def send_record(self, topic: str, org: str, value: bytes) -> None:
        self.bytes += len(value) + len(org)
        self.records += 1


def fan_out(transport: Transport) -> tuple[float, list[Client]]:
    """CPU seconds per alert delivered to CONNECTIONS connections, and the clients."""
    registry = Registry()
    outbox = Outbox(transport, Metrics(), max_buffered=10, cut_off=lambda c, r: None)
    delivery = Delivery(registry, outbox, Metrics(), max_held=10)
    clients = []
    for i in range(CONNECTIONS):
        conn = Connection(f"s{i}", f"e{i}", "org-a", f"unit-{i}", 0.0, open=True)
        registry.add(conn)
        registry.join(conn, "org:org-a")
        claims = Claims(f"unit-{i}", "org-a", ("field_unit",), 0.0)
        clients.append(Client(conn, claims, 0.0, TokenBucket(9, 9, 0)))
    started = time.process_time()
    for k in range(ALERTS):
        event = {**ALERT, "event_id": f"a{k}"}
        delivery.deliver("org-a", RoutedEvent(("org:org-a",), {"org:org-a": f"{k}-0"}, event))
    return (time.process_time() - started) / ALERTS, clients


async def answer_all(desk: Desk, clients: list[Client]) -> None:
    for client in clients:
        for kind in ("delivered", "displayed", "acknowledged"):
            await desk.answer(client, {"delivery_id": "a0", "kind": kind})


def main() -> None:
    plain, _ = fan_out(Wire())
    noted = ReceiptingTransport(Wire(), frozenset({"alert_created"}))
    receipted, clients = fan_out(noted)
    print(
        f"fan-out to {CONNECTIONS}: {plain * 1e3:.2f} ms CPU, noting sent: {receipted * 1e3:.2f} ms"
    )
    sink = Sink()
    flusher = SentFlusher(noted, sink, topic="t", gateway_id="gw-1", interval_s=1)
    started = time.process_time()
    asyncio.run(flusher.flush())
    spent = (time.process_time() - started) / ALERTS
    kib = sink.bytes / ALERTS / 1024
    print(
        f"sent: {sink.records / ALERTS:.0f} records, {kib:.1f} KiB, {spent * 1e3:.2f} ms CPU/alert"
    )
    sink = Sink()
    desk = Desk(sink, topic="t", gateway_id="gw-1", rate=1e6, burst=10**6)
    started = time.process_time()
    asyncio.run(answer_all(desk, clients))
    each = (time.process_time() - started) / sink.records
    print(f"client receipt: {each * 1e6:.1f} us CPU, {sink.bytes / sink.records:.0f} B per record")


if __name__ == "__main__":
    main()
