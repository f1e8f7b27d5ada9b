"""Receipted priority events: who got an alert, who saw it, who acknowledged it.

The delivery id of a receipted event is its ``event_id`` (unique per event,
and the same on every gateway and in every room's history), so a client
needs no new field to answer it; per recipient a delivery is the pair
(delivery id, session). The ``session`` event names the event types a
client should answer (``receipts``).

Facts, each a :data:`RECEIPT_TYPE` envelope on the Kafka topic
:data:`DEFAULT_TOPIC`, keyed by org (durable, consumable by other services,
and routed by the consumer like any event, so consoles see them live):

- ``sent``: the gateway wrote the event to the client's socket (its own fact,
  one record per delivery per gateway and flush, listing the recipients);
- ``delivered`` / ``displayed`` / ``acknowledged``: the client said so
  (an acknowledgement may carry a short ``response``, e.g. "en route").

A receipt envelope's ``data`` names the alert's sender as ``user_id`` and
its incident as ``incident_id``, so the default routing sends receipts to
the sender's user room and to the incident room, and to nobody else (a
receipt to the whole org would cost recipients squared). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import orjson

from fleetcast.protocol import rooms

#: The envelope type of every receipt, and its default topic.
RECEIPT_TYPE: Final = "alert_receipt"
DEFAULT_TOPIC: Final = "fleet.receipts"
#: Event types that ask for receipts unless configured otherwise.
DEFAULT_EVENTS: Final = frozenset({"alert_created", "alert_escalated"})
#: Field of an escalation's ``data`` (protocol/escalation.py) naming the delivery
#: it escalates: its receipts count for that one (``of`` in a receipt's data).
ESCALATION_KEY: Final = "escalation"

SENT: Final = "sent"
DELIVERED: Final = "delivered"
DISPLAYED: Final = "displayed"
ACKNOWLEDGED: Final = "acknowledged"
#: What a client may send, in the order a device goes through them.
CLIENT_KINDS: Final = (DELIVERED, DISPLAYED, ACKNOWLEDGED)
KINDS: Final = frozenset({SENT, *CLIENT_KINDS})

#: Longest acknowledgement response (characters): a status word, not a message.
MAX_RESPONSE: Final = 140
#: Longest delivery id accepted (as events.validate_envelope's event_id).
MAX_DELIVERY_ID: Final = 256
#: Field of an alert's ``data`` naming the user who sent it (receipts go to them).
SENDER_KEY: Final = "sent_by"

#: Error codes of a refused receipt (the ack's ``error.code``).
INVALID: Final = "invalid_receipt"
UNKNOWN: Final = "unknown_delivery"


class ReceiptError(ValueError):
    """A receipt refused; ``code`` is the client-facing error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Tag:
    """What a gateway keeps of a receipted event it sent: enough to route its receipts."""

    delivery_id: str
    event_type: str
    org: str
    #: The alert's sender (``data.sent_by``), when it names one.
    sender: str | None = None
    incident: str | None = None
    #: The delivery an escalation (a redelivery, a supervisors' copy) stands for.
    of: str | None = None


def tag_of(event: Mapping[str, Any]) -> Tag | None:
    """The receipt tag of one delivered envelope, or None when it cannot have receipts."""
    event_id, event_type = event.get("event_id"), event.get("event_type")
    org, data = event.get("organization_id"), event.get("data")
    if not (isinstance(event_id, str) and isinstance(event_type, str) and isinstance(org, str)):
        return None
    data = data if isinstance(data, dict) else {}
    sender, incident = _id(data.get(SENDER_KEY)), _id(data.get("incident_id"))
    escalating = data.get(ESCALATION_KEY)
    of = escalating.get("of") if isinstance(escalating, dict) else None
    return Tag(event_id, event_type, org, sender, incident, of if isinstance(of, str) else None)


def _id(value: object) -> str | None:
    return value if isinstance(value, str) and rooms.is_valid_id(value) else None


@dataclass(frozen=True, slots=True)
class ClientReceipt:
    """A client's ``receipt`` message, validated."""

    delivery_id: str
    kind: str
    response: str | None = None


def parse(doc: object) -> ClientReceipt:
    """Validate ``{"delivery_id", "kind", "response"?}``; :class:`ReceiptError` says why not."""
    if not isinstance(doc, dict):
        raise ReceiptError(INVALID, "a receipt is an object {delivery_id, kind, response?}")
    delivery_id, kind, response = doc.get("delivery_id"), doc.get("kind"), doc.get("response")
    if not isinstance(delivery_id, str) or not 0 < len(delivery_id) <= MAX_DELIVERY_ID:
        raise ReceiptError(INVALID, "delivery_id must be the event_id of an event you received")
    if kind not in CLIENT_KINDS:
        raise ReceiptError(INVALID, f"kind must be one of {', '.join(CLIENT_KINDS)}")
    if response is not None:
        if kind != ACKNOWLEDGED:
            raise ReceiptError(INVALID, "only an acknowledgement carries a response")
        if not isinstance(response, str) or len(response) > MAX_RESPONSE:
            raise ReceiptError(INVALID, f"response must be text of at most {MAX_RESPONSE} chars")
    return ClientReceipt(delivery_id, kind, response or None)


@dataclass(frozen=True, slots=True)
class Recipient:
    """One connection a receipted event was written to, and when (epoch seconds)."""

    user: str
    session: str
    at: float


def rfc3339(at: float) -> str:
    """Epoch seconds as the envelopes' ``occurred_at`` (UTC, milliseconds)."""
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _data(tag: Tag, kind: str, gateway: str) -> dict[str, Any]:
    data: dict[str, Any] = {"delivery_id": tag.delivery_id, "kind": kind}
    data |= {"event_type": tag.event_type, "gateway": gateway}
    if tag.sender is not None:
        data["user_id"] = tag.sender
    if tag.incident is not None:
        data["incident_id"] = tag.incident
    if tag.of is not None:
        data["of"] = tag.of
    return data


def client_envelope(
    tag: Tag,
    receipt: ClientReceipt,
    user: str,
    session: str,
    gateway: str,
    at: float,
    roles: Iterable[str] = (),
) -> dict[str, Any]:
    """The envelope of a client's receipt; its ``event_id`` is the same for a repeat."""
    data = _data(tag, receipt.kind, gateway) | {"recipient": user, "session": session}
    data["roles"] = sorted(roles)
    if receipt.response is not None:
        data["response"] = receipt.response
    return {
        "event_id": f"{tag.delivery_id}/{session}/{receipt.kind}",
        "event_type": RECEIPT_TYPE,
        "organization_id": tag.org,
        "occurred_at": rfc3339(at),
        "data": data,
    }


def sent_envelope(
    tag: Tag, recipients: Iterable[Recipient], gateway: str, flush: int | str
) -> dict[str, Any]:
    """The envelope of one gateway's ``sent`` facts for one delivery (one flush of them)."""
    listed = sorted(recipients, key=lambda r: (r.at, r.session))
    data = _data(tag, SENT, gateway) | {
        "recipients": [
            {"recipient": r.user, "session": r.session, "at": rfc3339(r.at)} for r in listed
        ]
    }
    return {
        "event_id": f"{tag.delivery_id}/{gateway}/sent/{flush}",
        "event_type": RECEIPT_TYPE,
        "organization_id": tag.org,
        "occurred_at": rfc3339(listed[-1].at if listed else 0.0),
        "data": data,
    }


def group_sent(facts: Iterable[tuple[Tag, Recipient]]) -> dict[Tag, list[Recipient]]:
    """Sent facts per delivery, in the order deliveries first appear."""
    grouped: dict[Tag, list[Recipient]] = {}
    for tag, recipient in facts:
        grouped.setdefault(tag, []).append(recipient)
    return grouped


def encode(envelope: Mapping[str, Any]) -> bytes:
    return orjson.dumps(envelope)
