"""The delivery record of receipted events, folded from their receipts (``fleet.receipts``).

An after-action review asks, per alert: who was it written to (the gateway
writes a receipted event only to connections the role policy let into its
rooms, so ``sent`` is who was authorized and reached), who had it, saw it and
acknowledged it, when, with what response; and whether it escalated. One
record per alert: the receipts of its escalations (a redelivery, the
supervisors' copy, which name the original in ``of``) are folded into the
original's record, each recipient entry naming the delivery it answers.

A recipient entry is one (delivery, session): a unit that was offline when
the alert went out and got it on reconnect shows the gap as its
``sent_at`` (and ``after_s``, seconds after the alert was first written to
anyone). Records come out in a fixed order (org, first fact, delivery id),
every list sorted, so the same receipts always give the same export and the
same chain (protocol/audit.py). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

from fleetcast.protocol import receipts

#: Each client kind's timestamp field in a recipient entry.
STAMPS: Final = {kind: f"{kind}_at" for kind in receipts.KINDS}


def parse_time(text: object) -> datetime | None:
    """An RFC 3339 time (as receipts.rfc3339 writes them), or None."""
    if not isinstance(text, str):
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(slots=True)
class _Record:
    org: str
    delivery_id: str
    event_type: str | None = None
    incident_id: str | None = None
    sender: str | None = None
    escalations: set[str] = field(default_factory=set)
    entries: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)

    def entry(self, delivery_id: str, recipient: str, session: str) -> dict[str, Any]:
        key = (delivery_id, session)
        if key not in self.entries:
            self.entries[key] = {
                "delivery_id": delivery_id,
                "recipient": recipient,
                "session": session,
            }
        return self.entries[key]


def _stamp(entry: dict[str, Any], kind: str, at: object) -> bool:
    """Keep the earliest time of ``kind`` for this entry; True when ``at`` is it (so far)."""
    name, parsed = STAMPS[kind], parse_time(at)
    if parsed is None:
        return False
    known = parse_time(entry.get(name))
    if known is None or parsed < known:
        entry[name] = at
        return True
    return False


class Folder:
    """Receipt envelopes in, delivery records out; feed it a topic in any partition order."""

    def __init__(self) -> None:
        self._records: dict[tuple[str, str], _Record] = {}

    def add(self, envelope: Mapping[str, Any]) -> bool:
        """Fold one envelope; False for one that is not a readable receipt (it is skipped)."""
        data, org = envelope.get("data"), envelope.get("organization_id")
        if envelope.get("event_type") != receipts.RECEIPT_TYPE or not isinstance(data, dict):
            return False
        delivery, kind = data.get("delivery_id"), data.get("kind")
        if not (isinstance(org, str) and isinstance(delivery, str) and kind in receipts.KINDS):
            return False
        of = data.get("of")
        record = self._record(org, of if isinstance(of, str) else delivery)
        if isinstance(of, str):
            record.escalations.add(delivery)
        elif isinstance(data.get("event_type"), str):
            record.event_type = data["event_type"]
        record.incident_id = record.incident_id or _text(data.get("incident_id"))
        record.sender = record.sender or _text(data.get("user_id"))
        if kind == receipts.SENT:
            return self._sent(record, delivery, data)
        return self._answer(record, delivery, kind, data, envelope.get("occurred_at"))

    def _record(self, org: str, delivery_id: str) -> _Record:
        key = (org, delivery_id)
        if key not in self._records:
            self._records[key] = _Record(org, delivery_id)
        return self._records[key]

    def _sent(self, record: _Record, delivery: str, data: Mapping[str, Any]) -> bool:
        listed = data.get("recipients")
        for item in listed if isinstance(listed, list) else []:
            who, session = _who(item)
            if who is not None and session is not None:
                entry = record.entry(delivery, who, session)
                entry["gateway"] = data.get("gateway")  # the one that wrote it says
                _stamp(entry, receipts.SENT, item.get("at"))
        return True

    def _answer(
        self, record: _Record, delivery: str, kind: str, data: Mapping[str, Any], at: object
    ) -> bool:
        who, session = _who(data)
        if who is None or session is None:
            return False
        entry = record.entry(delivery, who, session)
        entry.setdefault("gateway", data.get("gateway"))
        if isinstance(data.get("roles"), list):
            entry["roles"] = sorted(str(r) for r in data["roles"])
        earliest = _stamp(entry, kind, at)
        if earliest and kind == receipts.ACKNOWLEDGED:  # the first acknowledgement's response
            entry.pop("response", None)
            if isinstance(data.get("response"), str):
                entry["response"] = data["response"]
        return True

    def records(self) -> list[dict[str, Any]]:
        """Every record, in the export's fixed order."""
        built = [_render(record) for record in self._records.values()]
        return sorted(
            built, key=lambda r: (r["organization_id"], r["first_at"] or "", r["delivery_id"])
        )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def _who(item: object) -> tuple[str | None, str | None]:
    if not isinstance(item, Mapping):
        return None, None
    return _text(item.get("recipient")), _text(item.get("session"))


def _times(entries: Iterable[Mapping[str, Any]]) -> list[datetime]:
    return sorted(
        t for e in entries for name in STAMPS.values() if (t := parse_time(e.get(name))) is not None
    )


def _render(record: _Record) -> dict[str, Any]:
    entries = sorted(
        record.entries.values(),
        key=lambda e: (e.get("sent_at") or "~", e["recipient"], e["session"], e["delivery_id"]),
    )
    times = _times(entries)
    first_sent = min((t for e in entries if (t := parse_time(e.get("sent_at")))), default=None)
    for entry in entries:
        sent = parse_time(entry.get("sent_at"))
        if sent is not None and first_sent is not None:
            entry["after_s"] = round((sent - first_sent).total_seconds(), 3)
    return {
        "organization_id": record.org,
        "delivery_id": record.delivery_id,
        "event_type": record.event_type,
        "incident_id": record.incident_id,
        "sender": record.sender,
        "first_at": _rfc3339(times[0]) if times else None,
        "last_at": _rfc3339(times[-1]) if times else None,
        "counts": {kind: _count(entries, kind) for kind in (receipts.SENT, *receipts.CLIENT_KINDS)},
        "acknowledged_by": sorted({e["recipient"] for e in entries if "acknowledged_at" in e}),
        "escalations": sorted(record.escalations),
        "recipients": entries,
    }


def _count(entries: Iterable[Mapping[str, Any]], kind: str) -> int:
    """Distinct recipients that reached ``kind`` (a later kind implies the earlier ones)."""
    if kind == receipts.SENT:
        names = [STAMPS[kind]]
    else:  # delivered: any client receipt; displayed: displayed or acknowledged
        names = [STAMPS[k] for k in receipts.CLIENT_KINDS[receipts.CLIENT_KINDS.index(kind) :]]
    return len({e["recipient"] for e in entries if any(n in e for n in names)})


def _rfc3339(at: datetime) -> str:
    return receipts.rfc3339(at.timestamp())


def select(
    records: Iterable[Mapping[str, Any]],
    *,
    org: str | None = None,
    incident: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> list[Mapping[str, Any]]:
    """The records of one org, one incident, or first seen in [since, until)."""
    chosen = []
    for record in records:
        first = parse_time(record.get("first_at"))
        if org is not None and record.get("organization_id") != org:
            continue
        if incident is not None and record.get("incident_id") != incident:
            continue
        if since is not None and (first is None or first < since):
            continue
        if until is not None and (first is None or first >= until):
            continue
        chosen.append(record)
    return chosen
