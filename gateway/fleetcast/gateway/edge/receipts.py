"""The ``receipt`` request, and the flusher that publishes the gateway's own ``sent`` facts.

A client answers a receipted event (its ``event_id`` is the delivery id) with
``receipt`` ``{"delivery_id", "kind": "delivered" | "displayed" | "acknowledged",
"response"?}``. Checks run from the cheapest: the connection's receipt budget
(``rate_limited``), the shape (``invalid_receipt``), then whether this very
connection was sent that delivery (``unknown_delivery``: a forged id, an
event of another org, one forgotten long ago). An accepted receipt is written
to the Kafka receipts topic, keyed by org, and the ack ``{"ok": true}`` comes
only once Kafka has it (acks=all): an acknowledged receipt survives the
gateway. Kafka away: ``unavailable``, the client sends it again. A repeat of
a receipt already accepted on this connection is answered ``duplicate`` and
not written twice.

The flusher publishes what rooms/receipting.py noted (the event was written
to a socket) every interval: one record per delivery per flush, listing the
recipients, so an alert to 2,000 clients of a gateway costs one Kafka record,
not 2,000.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from typing import Any, Final, Protocol

import structlog

from fleetcast.gateway.edge.clients import Client
from fleetcast.gateway.edge.limits import TokenBucket
from fleetcast.gateway.rooms.receipting import ReceiptingTransport
from fleetcast.protocol import receipts

log = structlog.stdlib.get_logger(__name__)

Ack = dict[str, Any]

#: Accepted receipts remembered per connection (for ``duplicate``).
MAX_ANSWERED: Final = 2048
#: Recipients listed per ``sent`` record (~75 B each): well below Kafka's 1 MB
#: default record limit however many clients of a pod one alert reaches.
MAX_RECIPIENTS: Final = 1000


class RecordSink(Protocol):
    """Where receipts go: the gateway's Kafka producer (kafka/producer.py)."""

    async def send_record(self, topic: str, org: str, value: bytes) -> None: ...


class Desk:
    """Answers ``receipt`` requests."""

    def __init__(
        self,
        sink: RecordSink | None,
        *,
        topic: str,
        gateway_id: str,
        rate: float,
        burst: int,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._sink = sink
        self._topic = topic
        self._gateway = gateway_id
        self._rate, self._burst = rate, burst
        self._clock, self._monotonic = clock, monotonic
        self.accepted = 0

    async def answer(self, client: Client, data: Any) -> Ack:
        if client.receipt_budget is None:
            client.receipt_budget = TokenBucket(self._rate, self._burst, self._monotonic())
        wait = client.receipt_budget.take(self._monotonic())
        if wait:
            return _error("rate_limited", "too many receipts", retry_after=round(wait, 3))
        try:
            receipt = receipts.parse(data)
            tag = self._delivery(client, receipt)
        except receipts.ReceiptError as refused:
            return _error(refused.code, refused.message)
        key = f"{receipt.delivery_id}/{receipt.kind}"
        if client.answered is not None and key in client.answered:
            return {"ok": True, "duplicate": True, **_echo(receipt)}
        return await self._publish(client, tag, receipt, key)

    def _delivery(self, client: Client, receipt: receipts.ClientReceipt) -> receipts.Tag:
        conn = client.conn
        tag = (conn.deliveries or {}).get(receipt.delivery_id)
        if tag is None or tag.org != conn.org:
            raise receipts.ReceiptError(
                receipts.UNKNOWN, "no receipted event with this delivery_id was sent to you"
            )
        return tag

    async def _publish(
        self, client: Client, tag: receipts.Tag, receipt: receipts.ClientReceipt, key: str
    ) -> Ack:
        if self._sink is None:
            return _error("unavailable", "this gateway records no receipts (no Kafka)")
        conn = client.conn
        envelope = receipts.client_envelope(
            tag, receipt, conn.user, conn.sid, self._gateway, self._clock(), client.claims.roles
        )
        try:
            await self._sink.send_record(self._topic, tag.org, receipts.encode(envelope))
        except Exception as exc:  # Kafka away: nothing recorded, the client retries
            log.warning("receipt not recorded", org=tag.org, error=repr(exc))
            return _error("unavailable", "receipt not recorded; send it again")
        answered = client.answered
        if answered is None:
            answered = client.answered = set()
        elif len(answered) >= MAX_ANSWERED:
            answered.clear()  # a repeat of a very old one is written twice: harmless
        answered.add(key)
        self.accepted += 1
        return {"ok": True, **_echo(receipt)}


class SentFlusher:
    """Publishes the gateway's ``sent`` facts every ``interval_s`` (a service: run())."""

    def __init__(
        self,
        noted: ReceiptingTransport,
        sink: RecordSink,
        *,
        topic: str,
        gateway_id: str,
        interval_s: float,
    ) -> None:
        self._noted = noted
        self._sink = sink
        self._topic = topic
        self._gateway = gateway_id
        self._interval = interval_s
        self._flushes = itertools.count(1)
        self.published = 0

    async def run(self) -> None:
        while True:
            await asyncio.sleep(self._interval)
            await self.flush()

    async def flush(self) -> int:
        """Publish what was noted; facts Kafka did not take are kept for the next flush."""
        facts = self._noted.take()
        if not facts:
            return 0
        flush = next(self._flushes)
        for tag, everyone in receipts.group_sent(facts).items():
            for part in range(0, len(everyone), MAX_RECIPIENTS):
                recipients = everyone[part : part + MAX_RECIPIENTS]
                await self._send(tag, recipients, f"{flush}.{part // MAX_RECIPIENTS}")
        return self.published

    async def _send(
        self, tag: receipts.Tag, recipients: list[receipts.Recipient], flush: str
    ) -> None:
        """One ``sent`` record; what Kafka does not take is kept for the next flush."""
        envelope = receipts.sent_envelope(tag, recipients, self._gateway, flush)
        try:
            await self._sink.send_record(self._topic, tag.org, receipts.encode(envelope))
        except Exception as exc:
            log.warning("sent facts not recorded; kept", org=tag.org, error=repr(exc))
            self._noted.facts[:0] = [(tag, r) for r in recipients]
            return
        self.published += 1


def _echo(receipt: receipts.ClientReceipt) -> dict[str, str]:
    return {"delivery_id": receipt.delivery_id, "kind": receipt.kind}


def _error(code: str, message: str, **extra: Any) -> Ack:
    return {"ok": False, "error": {"code": code, "message": message, **extra}}
