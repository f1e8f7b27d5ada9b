"""FleetBroadcast status conditions, computed from observations. Pure.

Seven conditions, keyed by type (the table in docs/operator.md):

- ``Reconciled``: the last reconcile's outcome (the spec applied, or why not:
  ApplyFailed, Conflict, InvalidSpec, SecretMissing, SecretKeyMissing);
- ``Progressing``: a new generation or a rollout under way; False with
  ``Complete`` once done, or ``ProgressDeadlineExceeded`` once given up;
- ``Degraded``: something that keeps the FleetBroadcast from working that
  waiting will not fix: the Reconciled failures above, and the rollout
  problems the Deployments and pods show (:mod:`.observing`), pod named;
- ``GatewayAvailable`` / ``ConsumerAvailable``: the component serves;
- ``BackendsReachable``: the pods' own word on Kafka and Redis (:mod:`.backends`);
- ``Ready``: the roll-up.

A condition's ``lastTransitionTime`` moves only when its status changes, so
watchers and ``kubectl wait`` see real transitions, not every rewrite.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from fleetcast.operator.observing import Problem, Rollout

READY: Final = "Ready"
RECONCILED: Final = "Reconciled"
PROGRESSING: Final = "Progressing"
DEGRADED: Final = "Degraded"
GATEWAY_AVAILABLE: Final = "GatewayAvailable"
CONSUMER_AVAILABLE: Final = "ConsumerAvailable"
BACKENDS_REACHABLE: Final = "BackendsReachable"
TYPES: Final = (
    READY,
    RECONCILED,
    PROGRESSING,
    DEGRADED,
    GATEWAY_AVAILABLE,
    CONSUMER_AVAILABLE,
    BACKENDS_REACHABLE,
)
HEALTHY: Final = "Healthy"
#: Most problems listed in one Degraded message.
SHOWN_PROBLEMS: Final = 5

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


def availability(kind: str, component: str, rollout: Rollout, generation: int) -> Condition:
    """GatewayAvailable / ConsumerAvailable from one Deployment."""
    if rollout.conflict:
        return Condition(kind, "False", "Conflict", rollout.conflict, generation)
    if not rollout.exists:
        message = f"the {component} Deployment does not exist"
        return Condition(kind, "False", "DeploymentMissing", message, generation)
    counts = f"{rollout.ready}/{rollout.desired} {component} pods ready"
    if not rollout.complete:
        message = f"rolling out: {rollout.updated}/{rollout.desired} updated, {counts}"
        status: Status = "True" if rollout.serving else "False"
        return Condition(kind, status, "RollingOut", message, generation)
    if not rollout.serving:
        return Condition(kind, "False", "Unavailable", counts, generation)
    return Condition(kind, "True", "Available", counts, generation)


def progressing(
    generation: int, reconciled: Condition | None, gateway: Rollout, consumer: Rollout
) -> Condition:
    """Progressing: True while a generation or a rollout is under way."""

    def made(status: Status, reason: str, message: str) -> Condition:
        return Condition(PROGRESSING, status, reason, message, generation)

    if reconciled is None or reconciled.observed_generation < generation:
        return made("True", "NewGeneration", f"generation {generation} is not applied yet")
    stalled = [
        p.message
        for r in (gateway, consumer)
        for p in r.problems
        if r.stalled and p.reason == "ProgressDeadlineExceeded"
    ]
    if stalled:
        return made("False", "ProgressDeadlineExceeded", "; ".join(stalled))
    for component, rollout in (("gateway", gateway), ("consumer", consumer)):
        if rollout.conflict:
            return made("False", "Conflict", rollout.conflict)
        if not rollout.exists:
            return made("True", "RollingOut", f"the {component} Deployment does not exist yet")
        if not rollout.complete:
            done = f"{rollout.updated}/{rollout.desired} pods updated"
            return made("True", "RollingOut", f"rolling out the {component}: {done}")
    return made("False", "Complete", f"generation {generation} is rolled out")


def degraded(generation: int, reconciled: Condition | None, found: Sequence[Problem]) -> Condition:
    """Degraded: the reconcile's failure and every rollout problem, the first one's reason."""
    problems = list(found)
    if reconciled is not None and not reconciled.is_true:
        problems.insert(0, Problem(reconciled.reason, reconciled.message))
    if not problems:
        message = "nothing keeps the gateways and consumers from running"
        return Condition(DEGRADED, "False", HEALTHY, message, generation)
    shown = [p.message for p in problems[:SHOWN_PROBLEMS]]
    more = len(problems) - len(shown)
    message = "; ".join(shown) + (f"; and {more} more" if more > 0 else "")
    return Condition(DEGRADED, "True", problems[0].reason, message, generation)


def roll_up(
    generation: int, conditions: Mapping[str, Condition], gateway: Rollout, consumer: Rollout
) -> Condition:
    """Ready: the spec applied, nothing degraded, rolled out, both components serving."""

    def not_ready(reason: str, message: str) -> Condition:
        return Condition(READY, "False", reason, message, generation)

    reconciled = conditions.get(RECONCILED)
    if reconciled is None:
        return not_ready("Pending", "not reconciled yet")
    for kind in (DEGRADED, PROGRESSING):
        found = conditions[kind]
        if found.is_true:
            return not_ready(found.reason if kind == DEGRADED else PROGRESSING, found.message)
    for kind in (GATEWAY_AVAILABLE, CONSUMER_AVAILABLE):
        found = conditions[kind]
        if not found.is_true:
            title = "Gateway" if kind == GATEWAY_AVAILABLE else "Consumer"
            return not_ready(f"{title}Unavailable", found.message)
    backends = conditions.get(BACKENDS_REACHABLE)
    if backends is not None and backends.status == "False":
        return not_ready(backends.reason, backends.message)
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


def evaluate(
    generation: int,
    reconciled: Condition | None,
    backends: Condition | None,
    gateway: Rollout,
    consumer: Rollout,
    consumer_name: str = "consumer",
) -> list[Condition]:
    """Every condition, in the order they are stored (Ready first)."""
    problems = [*gateway.problems, *consumer.problems]
    computed: dict[str, Condition] = {
        PROGRESSING: progressing(generation, reconciled, gateway, consumer),
        DEGRADED: degraded(generation, reconciled, problems),
        GATEWAY_AVAILABLE: availability(GATEWAY_AVAILABLE, "gateway", gateway, generation),
        CONSUMER_AVAILABLE: availability(CONSUMER_AVAILABLE, consumer_name, consumer, generation),
    }
    if reconciled is not None:
        computed[RECONCILED] = reconciled
    if backends is not None:
        computed[BACKENDS_REACHABLE] = backends
    ready = roll_up(generation, computed, gateway, consumer)
    return [ready, *(computed[kind] for kind in TYPES[1:] if kind in computed)]


def timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC, seconds precision, as Kubernetes writes it."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
