"""The tamper-evident delivery record: each record chained to the previous one's hash, per org.

A dispatch centre's after-action review asks who was authorized, who
received an alert, when, and who acknowledged it. Records (receipt
envelopes, in the order the org's partition holds them) are linked: each
link's hash is SHA-256 over the previous link's hash and the record's
canonical JSON (sorted keys, no spaces). Editing, dropping or reordering a
record breaks every hash after it, which :func:`verify` finds. It costs one
hash per record. Pure: no I/O.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

#: The hash before an org's first record.
GENESIS: Final = "0" * 64


@dataclass(frozen=True, slots=True)
class Link:
    """One record of the chain, with the hash before it and its own."""

    record: Mapping[str, Any]
    prev: str
    hash: str

    def as_dict(self) -> dict[str, Any]:
        return {"record": dict(self.record), "prev": self.prev, "hash": self.hash}


def digest(prev: str, record: Mapping[str, Any]) -> str:
    """The hash of ``record`` chained after ``prev``."""
    canonical = orjson.dumps(record, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(prev.encode() + b"\n" + canonical).hexdigest()


def chain(records: Iterable[Mapping[str, Any]], prev: str = GENESIS) -> list[Link]:
    """Link ``records`` in order after ``prev`` (the last hash of the org's chain so far)."""
    links = []
    for record in records:
        link = Link(record, prev, digest(prev, record))
        links.append(link)
        prev = link.hash
    return links


def chain_per_org(records: Iterable[Mapping[str, Any]]) -> dict[str, list[Link]]:
    """One chain per ``organization_id``, each record in its org's order."""
    per_org: dict[str, list[Mapping[str, Any]]] = {}
    for record in records:
        per_org.setdefault(str(record.get("organization_id")), []).append(record)
    return {org: chain(items) for org, items in per_org.items()}


def verify(links: Sequence[Link], start: str = GENESIS) -> int | None:
    """Index of the first link that does not hold (edited, dropped, moved), or None if all hold."""
    prev = start
    for index, link in enumerate(links):
        if link.prev != prev or link.hash != digest(prev, link.record):
            return index
        prev = link.hash
    return None
