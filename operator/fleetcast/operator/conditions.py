"""FleetBroadcast status: conditions and replica counts, computed from observations. Pure.

Five conditions, keyed by type: ``Reconciled`` (the spec of a generation was
applied) and ``Degraded`` (something the operator cannot fix, such as a
missing Secret) come from reconciling; ``GatewayAvailable`` and
``ConsumerAvailable`` from the owned Deployments' status; ``Ready`` rolls them
up, with ``Progressing`` as its reason while a rollout runs. A condition's
``lastTransitionTime`` moves only when its status changes, so watchers and
``kubectl wait`` see real transitions, not every rewrite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

READY: Final = "Ready"
RECONCILED: Final = "Reconciled"
GATEWAY_AVAILABLE: Final = "GatewayAvailable"
CONSUMER_AVAILABLE: Final = "ConsumerAvailable"
DEGRADED: Final = "Degraded"
TYPES: Final = (READY, RECONCILED, GATEWAY_AVAILABLE, CONSUMER_AVAILABLE, DEGRADED)
PROGRESSING: Final = "Progressing"

Status = Literal["True", "False", "Unknown"]


@dataclass(frozen=True, slots=True)
class Condition:
    type: str
    status: Status
    reason: str
    message: str
    #: The FleetBroadcast generation this condition was computed for.
    observed_generation: int

    @property
    def is_true(self) -> bool:
        return self.status == "True"


@dataclass(frozen=True, slots=True)
class Rollout:
    """What the status of one owned Deployment says (or that it does not exist)."""

    exists: bool
    desired: int = 0
    total: int = 0
    ready: int = 0
    updated: int = 0
    available: int = 0
    observed: bool = False
    available_condition: bool = False

    @classmethod
    def of(cls, deployment: Mapping[str, Any] | None) -> Rollout:
        if deployment is None:
            return cls(exists=False)
        spec, status = deployment.get("spec", {}), deployment.get("status", {})
        generation = deployment.get("metadata", {}).get("generation", 0)
        return cls(
            exists=True,
            desired=spec.get("replicas", 1),
            total=status.get("replicas", 0),
            ready=status.get("readyReplicas", 0),
            updated=status.get("updatedReplicas", 0),
            available=status.get("availableReplicas", 0),
            observed=status.get("observedGeneration", 0) >= generation,
            available_condition=any(
                c.get("type") == "Available" and c.get("status") == "True"
                for c in status.get("conditions", [])
            ),
        )

    @property
    def complete(self) -> bool:
        """kubectl rollout status's rule: every pod updated, old ones gone, all available."""
        return (
            self.observed
            and self.updated >= self.desired
            and self.total <= self.updated
            and self.available >= self.updated
        )

    @property
    def serving(self) -> bool:
        return self.desired == 0 or self.available_condition

    def summary(self) -> dict[str, Any]:
        return {
            "replicas": self.desired,
            "readyReplicas": self.ready,
            "updatedReplicas": self.updated,
            "ready": f"{self.ready}/{self.desired}",
        }


def availability(kind: str, component: str, rollout: Rollout, generation: int) -> Condition:
    """GatewayAvailable / ConsumerAvailable from one Deployment."""
    if not rollout.exists:
        return Condition(
            kind,
            "False",
            "DeploymentMissing",
            f"the {component} Deployment does not exist",
            generation,
        )
    counts = f"{rollout.ready}/{rollout.desired} {component} pods ready"
    if not rollout.complete:
        message = f"rolling out: {rollout.updated}/{rollout.desired} updated, {counts}"
        return Condition(
            kind, "True" if rollout.serving else "False", "RollingOut", message, generation
        )
    if not rollout.serving:
        return Condition(kind, "False", "Unavailable", counts, generation)
    return Condition(kind, "True", "Available", counts, generation)


def roll_up(
    generation: int,
    reconciled: Condition | None,
    degraded: Condition | None,
    gateway: Rollout,
    consumer: Rollout,
) -> Condition:
    """Ready: True only when the current spec is applied, nothing is degraded, and both run it."""

    def not_ready(reason: str, message: str) -> Condition:
        return Condition(READY, "False", reason, message, generation)

    if degraded is not None and degraded.is_true:
        return not_ready(degraded.reason, degraded.message)
    if reconciled is None:
        return not_ready("Pending", "not reconciled yet")
    if not reconciled.is_true:
        return not_ready(reconciled.reason, reconciled.message)
    if reconciled.observed_generation < generation:
        return not_ready(PROGRESSING, f"generation {generation} is not applied yet")
    for component, rollout in (("gateway", gateway), ("consumer", consumer)):
        title = component.capitalize()
        if not rollout.exists:
            return not_ready(f"{title}Missing", f"the {component} Deployment does not exist")
        if not rollout.complete:
            done = f"{rollout.updated}/{rollout.desired} pods updated"
            return not_ready(PROGRESSING, f"rolling out the {component}: {done}")
        if not rollout.serving:
            return not_ready(f"{title}Unavailable", f"the {component} pods are not available")
    message = (
        f"{gateway.ready}/{gateway.desired} gateways and "
        f"{consumer.ready}/{consumer.desired} consumers ready"
    )
    return Condition(READY, "True", "Available", message, generation)


def find(conditions: Sequence[Mapping[str, Any]], kind: str) -> Condition | None:
    """A condition of a stored status, as a :class:`Condition`."""
    for raw in conditions:
        if raw.get("type") == kind:
            return Condition(
                kind,
                raw["status"],
                raw["reason"],
                raw.get("message", ""),
                raw.get("observedGeneration", 0),
            )
    return None


def merge(
    previous: Sequence[Mapping[str, Any]], wanted: Sequence[Condition], now: datetime
) -> list[dict[str, Any]]:
    """The stored conditions, keeping each lastTransitionTime unless its status changed."""
    before = {raw.get("type"): raw for raw in previous}
    stamp = timestamp(now)
    merged = []
    for condition in wanted:
        old = before.get(condition.type)
        unchanged = old is not None and old.get("status") == condition.status
        merged.append(
            {
                "type": condition.type,
                "status": condition.status,
                "reason": condition.reason,
                "message": condition.message,
                "lastTransitionTime": old["lastTransitionTime"] if unchanged and old else stamp,
                "observedGeneration": condition.observed_generation,
            }
        )
    return merged


def build_status(
    *,
    generation: int,
    previous: Mapping[str, Any],
    reconciled: Condition | None,
    degraded: Condition | None,
    gateway: Rollout,
    consumer: Rollout,
    now: datetime,
) -> dict[str, Any]:
    """The whole ``status`` of a FleetBroadcast.

    ``reconciled``/``degraded`` are None when this update is not the outcome
    of a reconcile (a Deployment's status changed): the stored ones stand.
    """
    stored = previous.get("conditions", [])
    reconciled = reconciled or find(stored, RECONCILED)
    degraded = degraded or find(stored, DEGRADED)
    wanted = [
        roll_up(generation, reconciled, degraded, gateway, consumer),
        *(c for c in (reconciled, degraded) if c is not None),
        availability(GATEWAY_AVAILABLE, "gateway", gateway, generation),
        availability(CONSUMER_AVAILABLE, "consumer", consumer, generation),
    ]
    status: dict[str, Any] = {"conditions": merge(stored, wanted, now)}
    if reconciled is not None:
        status["observedGeneration"] = reconciled.observed_generation
    status["gateway"] = gateway.summary()
    status["consumer"] = consumer.summary()
    return status


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, seconds precision, as Kubernetes writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
