"""City clients that answer receipted alerts, as the CLI client and the console do.

A field unit answers each alert ``delivered``, ``displayed`` and
``acknowledged``; a console ``delivered`` and ``displayed`` (docs/receipts.md).
Receipt records routed back to a console (it sent the alert) are counted,
not parsed, and kept out of the alert latency figures.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from bench.city.client import MapClient, Tally
from bench.loadgen import codec

ALERT_PREFIX: Final = b'42["alert_created"'
RECEIPT_PREFIX: Final = b'42["alert_receipt"'
EVENT_ID: Final = re.compile(rb'"event_id":"([^"]+)"')
UNIT_KINDS: Final = ("delivered", "displayed", "acknowledged")
CONSOLE_KINDS: Final = ("delivered", "displayed")
#: Ack ids of receipts start here (below: the subscribe acks of MapClient).
FIRST_ACK: Final = 1000


@dataclass(slots=True)
class Answers:
    """What one group of clients sent and was answered during a phase."""

    sent: int = 0
    ok: int = 0
    refused: int = 0
    #: alert_receipt records received (by the consoles that sent the alerts).
    records: int = 0
    record_bytes: int = 0


class AnsweringClient(MapClient):
    """A MapClient that answers every alert it gets with ``kinds``."""

    def __init__(
        self,
        token: str,
        rooms: tuple[str, ...],
        tally: Tally,
        answers: Answers,
        kinds: tuple[str, ...],
    ) -> None:
        super().__init__(token, rooms, tally, sample=False)
        self.answers = answers
        self.kinds = kinds
        self._next_ack = FIRST_ACK

    def _count(self, text: bytes, now: int) -> None:
        if text.startswith(RECEIPT_PREFIX):
            self.answers.records += 1
            self.answers.record_bytes += len(text)
            return
        super()._count(text, now)
        if text.startswith(ALERT_PREFIX):
            found = EVENT_ID.search(text)
            if found is not None:
                self._answer(found[1].decode())

    def _answer(self, delivery_id: str) -> None:
        for kind in self.kinds:
            self._send(
                codec.sio_event(
                    "receipt", {"delivery_id": delivery_id, "kind": kind}, self._next_ack
                )
            )
            self._next_ack += 1
            self.answers.sent += 1

    def _control(self, packet: codec.SioPacket) -> None:
        if packet.kind == 3 and packet.ack_id is not None and packet.ack_id >= FIRST_ACK:
            ack = packet.data[0] if isinstance(packet.data, list) and packet.data else {}
            if isinstance(ack, dict) and ack.get("ok"):
                self.answers.ok += 1
            else:
                self.answers.refused += 1
            return
        super()._control(packet)
