"""Reading the Prometheus text format the gateway and the consumer export."""

from __future__ import annotations

import math


def samples(text: str) -> dict[str, float]:
    """Every sample as ``{"name{labels}": value}`` (comments skipped)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        key, _, value = line.rpartition(" ")
        try:
            found[key] = float(value)
        except ValueError:
            continue
    return found


def total(found: dict[str, float], name: str) -> float:
    """Sum of ``name`` over its labels (``name`` as exported, e.g. ``..._total``)."""
    return sum(v for k, v in found.items() if k == name or k.startswith(name + "{"))


def changes(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    """Samples that moved between two scrapes, by how much."""
    moved = {k: v - before.get(k, 0.0) for k, v in after.items()}
    return {k: v for k, v in moved.items() if v and not math.isnan(v)}
