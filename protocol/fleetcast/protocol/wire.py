"""The Redis pub/sub wire format between the consumer and the gateways.

One pub/sub message carries one or more events of one org (the consumer
publishes per org and per batch, so a burst costs one message, not one per
event). JSON, versioned, never pickle::

    {"v": 1, "org": "org-42", "events": [
        {"rooms": ["channel:ch-3:org:org-42", "org:org-42"],
         "offsets": {"channel:ch-3:org:org-42": "1732550400000-0", ...},
         "event": {"event_id": ..., "event_type": ..., "organization_id": ...,
                   "occurred_at": ..., "data": {...}}}]}

``rooms`` are full room names in routing order. ``offsets`` holds the history
stream id of the event in each room that keeps history (a room without
history, such as the fleet room, is absent). ``event`` is the envelope as it
came from Kafka. A gateway refuses any other version loudly (a mixed-version
rollout must not deliver garbage).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

VERSION: Final = 1


class WireError(ValueError):
    """A pub/sub message this gateway cannot read."""


@dataclass(frozen=True, slots=True)
class RoutedEvent:
    """One event with its target rooms and its offset in each room's history."""

    rooms: tuple[str, ...]
    offsets: Mapping[str, str]
    event: Mapping[str, Any]


def encode(org: str, batch: Sequence[RoutedEvent]) -> bytes:
    return orjson.dumps(
        {
            "v": VERSION,
            "org": org,
            "events": [
                {"rooms": list(item.rooms), "offsets": dict(item.offsets), "event": item.event}
                for item in batch
            ],
        }
    )


def decode(raw: bytes | str) -> tuple[str, list[RoutedEvent]]:
    """Parse one pub/sub message into (org, events); :class:`WireError` if unreadable."""
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise WireError(f"not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("v") != VERSION:
        raise WireError(
            f"unsupported wire version {doc.get('v') if isinstance(doc, dict) else None!r}"
        )
    try:
        org = doc["org"]
        batch = [
            RoutedEvent(tuple(item["rooms"]), item.get("offsets") or {}, item["event"])
            for item in doc["events"]
        ]
    except (KeyError, TypeError) as exc:
        raise WireError(f"malformed message: {exc!r}") from None
    return org, batch
