"""The whole ``status`` of a FleetBroadcast, from what was observed. Pure.

Conditions come from :mod:`.conditions`; the counts from the Deployments
(:class:`~.observing.Rollout`); the live figures (connections per gateway,
consumer lag) from the pods' own reports (:mod:`.backends`); the last drain
from the termination message of the last gateway container that stopped.
What a call does not know (no fresh reconcile, no fresh reports) is kept from
the stored status, so an observation never erases a reconcile's verdict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fleetcast.operator import backends, conditions
from fleetcast.operator.backends import PodReport
from fleetcast.operator.conditions import Condition
from fleetcast.operator.observing import Rollout


@dataclass(frozen=True, slots=True)
class Observation:
    """One status computation's inputs besides the stored status."""

    generation: int
    gateway: Rollout
    consumer: Rollout
    placement: str = "deployment"
    #: The reconcile's verdict; None: keep the stored one.
    reconciled: Condition | None = None
    #: BackendsReachable; None: keep the stored one.
    backends: Condition | None = None
    reports: Sequence[PodReport] | None = None
    last_drain: Mapping[str, Any] | None = None


def build(previous: Mapping[str, Any], seen: Observation, now: datetime) -> dict[str, Any]:
    """The status to store (equal to ``previous`` when nothing changed)."""
    stored = previous.get("conditions", [])
    reconciled = seen.reconciled or conditions.find(stored, conditions.RECONCILED)
    reachable = seen.backends or conditions.find(stored, conditions.BACKENDS_REACHABLE)
    consumer_name = "consumer sidecar" if seen.placement == "sidecar" else "consumer"
    wanted = conditions.evaluate(
        seen.generation, reconciled, reachable, seen.gateway, seen.consumer, consumer_name
    )
    status: dict[str, Any] = {"conditions": conditions.merge(stored, wanted, now)}
    if reconciled is not None:
        status["observedGeneration"] = reconciled.observed_generation
    gateway = {
        **_counts(previous, "gateway", seen.gateway),
        **_live(previous, "gateway", seen, "connections", "pods"),
    }
    drain = seen.last_drain or (previous.get("gateway") or {}).get("lastDrain")
    if drain:
        gateway["lastDrain"] = dict(drain)
    consumer = {**_counts(previous, "consumer", seen.consumer), "placement": seen.placement}
    consumer.update(_live(previous, "consumer", seen, "lag"))
    status["gateway"], status["consumer"] = gateway, consumer
    return status


def _counts(previous: Mapping[str, Any], component: str, rollout: Rollout) -> dict[str, Any]:
    """Replica counts; while the Deployment is gone, the count it had is kept (the operator
    creates it again at that size, not at the autoscaler's minimum)."""
    counts = rollout.summary()
    if not rollout.exists:
        counts["replicas"] = (previous.get(component) or {}).get("replicas", 0)
        counts["ready"] = f"{counts['readyReplicas']}/{counts['replicas']}"
    return counts


def _live(
    previous: Mapping[str, Any], component: str, seen: Observation, *keys: str
) -> dict[str, Any]:
    """The live counters of a component: fresh from the reports, else as stored."""
    if seen.reports is not None:
        return backends.counters(seen.reports)[component]
    before = previous.get(component) or {}
    return {key: before[key] for key in keys if key in before}
