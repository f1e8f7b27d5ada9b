"""Is this replica the one that reconciles? kopf's peering rule, for our own resync loop. Pure.

kopf pauses every handler of a replica that sees another live peer with a
higher or equal priority in the peering object's status (kopf/_core/engines/
peering.py). The periodic resync is not a kopf handler (a kopf timer would put
a finalizer on every FleetBroadcast), so it asks the same question of the same
status before it acts: while kopf has this replica paused, so does the resync.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any


def is_leader(peers: Mapping[str, Any], identity: str, priority: int, now: datetime) -> bool:
    """True when ``identity`` has a live keep-alive and no live peer ranks >= it."""
    if not _alive(peers.get(identity), now):
        return False
    for peer, info in peers.items():
        if peer == identity or not _alive(info, now):
            continue
        if int(info.get("priority", 0)) >= priority:
            return False
    return True


def _alive(info: Any, now: datetime) -> bool:
    if not isinstance(info, Mapping) or "lastseen" not in info:
        return False
    try:
        seen = datetime.fromisoformat(str(info["lastseen"]))
    except ValueError:
        return False
    if seen.tzinfo is None:
        seen = seen.replace(tzinfo=UTC)
    return seen + timedelta(seconds=int(info.get("lifetime", 60))) > now
