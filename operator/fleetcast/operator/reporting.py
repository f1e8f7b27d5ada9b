"""Kubernetes Events about a FleetBroadcast: what changed, for ``kubectl describe``. Pure.

Events mark transitions only (Ready or Degraded changing status or reason, a
repaired drift), never every status rewrite, so they stay readable and cheap.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final, Literal

from fleetcast.operator import conditions
from fleetcast.operator.rendering import MANAGER

#: Conditions whose transitions are announced.
ANNOUNCED: Final = (conditions.READY, conditions.DEGRADED)
EventType = Literal["Normal", "Warning"]


def event(
    owner: Mapping[str, Any], kind: EventType, reason: str, message: str, now: datetime
) -> dict[str, Any]:
    """A core/v1 Event about ``owner`` (a FleetBroadcast body)."""
    meta = owner["metadata"]
    stamp = conditions.timestamp(now)
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": f"{meta['name']}.{secrets.token_hex(8)}",
            "namespace": meta["namespace"],
        },
        "involvedObject": {
            "apiVersion": owner["apiVersion"],
            "kind": owner["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "type": kind,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": MANAGER},
        "reportingComponent": MANAGER,
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    }


def transitions(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]
) -> list[tuple[EventType, str, str]]:
    """(type, reason, message) for each announced condition that changed status or reason."""
    old = {c.get("type"): c for c in before}
    announced: list[tuple[EventType, str, str]] = []
    for condition in after:
        kind = condition["type"]
        previous = old.get(kind)
        if kind not in ANNOUNCED or _same(previous, condition):
            continue
        bad = (kind == conditions.READY) != (condition["status"] == "True")
        severity: EventType = (
            "Warning" if bad and condition["reason"] != "Progressing" else "Normal"
        )
        announced.append(
            (severity, condition["reason"], f"{kind}={condition['status']}: {condition['message']}")
        )
    return announced


def _same(previous: Mapping[str, Any] | None, current: Mapping[str, Any]) -> bool:
    return (
        previous is not None
        and previous.get("status") == current["status"]
        and previous.get("reason") == current["reason"]
    )
