"""What the owned Deployments and their pods say: rollout progress and problems. Pure.

A Deployment's own status tells how far a rollout got (:class:`Rollout`) and,
late, that it gave up (``ProgressDeadlineExceeded``) or could not create pods
(``ReplicaFailure``: a quota, an admission policy). The pods tell the rest at
once, naming themselves: the scheduler found no node (``Unschedulable``), the
kubelet cannot pull the image or keeps restarting a crashing container. Each
finding is a :class:`Problem`; :mod:`.conditions` turns them into Degraded.

Only a Deployment this FleetBroadcast controls is looked at: one of the same
name that someone else created is reported as a conflict, never as ours.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

#: Container waiting reasons, by the Degraded reason they give.
IMAGE_PULL: Final = frozenset(
    {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
)
CRASH_LOOP: Final = frozenset({"CrashLoopBackOff"})
CONTAINER_CONFIG: Final = frozenset({"CreateContainerConfigError", "CreateContainerError"})
#: Longest excerpt of a message from the cluster kept in a condition.
EXCERPT: Final = 240


@dataclass(frozen=True, slots=True)
class Problem:
    """Something that keeps the pods from running, with the object it concerns."""

    reason: str
    message: str


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
    #: Why it is not ours, when a Deployment of that name belongs to someone else.
    conflict: str = ""
    problems: tuple[Problem, ...] = field(default=())

    @classmethod
    def of(cls, deployment: Mapping[str, Any] | None, conflict: str = "") -> Rollout:
        if deployment is None:
            return cls(exists=False)
        if conflict:
            return cls(exists=False, conflict=conflict)
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
            available_condition=_condition(status, "Available", "True") is not None,
            problems=tuple(deployment_problems(deployment)),
        )

    def with_problems(self, found: Iterable[Problem]) -> Rollout:
        merged = (*self.problems, *found)
        return Rollout(
            self.exists,
            self.desired,
            self.total,
            self.ready,
            self.updated,
            self.available,
            self.observed,
            self.available_condition,
            self.conflict,
            merged,
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
    def stalled(self) -> bool:
        return any(p.reason == "ProgressDeadlineExceeded" for p in self.problems)

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


def _condition(status: Mapping[str, Any], kind: str, value: str) -> Mapping[str, Any] | None:
    for found in status.get("conditions") or []:
        if found.get("type") == kind and found.get("status") == value:
            return found  # type: ignore[no-any-return]
    return None


def deployment_problems(deployment: Mapping[str, Any]) -> list[Problem]:
    """A rollout that gave up, or pods the ReplicaSet could not create."""
    status = deployment.get("status", {})
    name = f"Deployment {deployment['metadata']['name']}"
    found = []
    stalled = _condition(status, "Progressing", "False")
    if stalled is not None and stalled.get("reason") == "ProgressDeadlineExceeded":
        found.append(Problem("ProgressDeadlineExceeded", f"{name}: {_excerpt(stalled)}"))
    failure = _condition(status, "ReplicaFailure", "True")
    if failure is not None:
        found.append(Problem("ReplicaFailure", f"{name}: {_excerpt(failure)}"))
    return found


def pod_problems(
    pods: Sequence[Mapping[str, Any]], containers: Iterable[str] = (), *, pod_level: bool = True
) -> list[Problem]:
    """Pods the scheduler cannot place, or whose containers cannot start or keep crashing.

    ``containers`` limits the look to those container names (a consumer
    sidecar's own problems belong to the consumer); empty means all.
    ``pod_level`` includes what concerns the whole pod (Unschedulable).
    """
    wanted = set(containers)
    found: list[Problem] = []
    for pod in pods:
        meta = pod.get("metadata", {})
        if meta.get("deletionTimestamp"):
            continue
        status = pod.get("status", {})
        name = f"pod {meta.get('name')}"
        unscheduled = _condition(status, "PodScheduled", "False")
        if pod_level and unscheduled is not None and unscheduled.get("reason") == "Unschedulable":
            found.append(Problem("Unschedulable", f"{name}: {_excerpt(unscheduled)}"))
        for container in _statuses(status):
            if wanted and container.get("name") not in wanted:
                continue
            problem = _container_problem(name, container)
            if problem is not None:
                found.append(problem)
    return found


def _statuses(status: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def _container_problem(pod: str, container: Mapping[str, Any]) -> Problem | None:
    waiting = (container.get("state") or {}).get("waiting") or {}
    reason = waiting.get("reason", "")
    if reason in IMAGE_PULL:
        kind = "ImagePull"
    elif reason in CRASH_LOOP:
        kind = "CrashLoop"
    elif reason in CONTAINER_CONFIG:
        kind = "ContainerConfig"
    else:
        return None
    detail = f"{reason}: {waiting.get('message', '')}".rstrip(": ")[:EXCERPT]
    return Problem(kind, f"{pod} container {container.get('name')}: {detail}")


def _excerpt(condition: Mapping[str, Any]) -> str:
    text = str(condition.get("message") or condition.get("reason") or "")
    return text[:EXCERPT]


def sidecar_rollout(gateway: Rollout, pods: Sequence[Mapping[str, Any]], container: str) -> Rollout:
    """The consumer as sidecars of the gateway pods: it rolls out with them, and is up
    where its container runs (it has no readiness of its own, see :mod:`.pods`)."""
    if not gateway.exists:
        return gateway
    running = sum(1 for pod in pods if _running(pod, container))
    return Rollout(
        exists=True,
        desired=gateway.desired,
        total=gateway.total,
        ready=running,
        updated=gateway.updated,
        available=min(running, gateway.available),
        observed=gateway.observed,
        available_condition=running > 0,
        problems=tuple(pod_problems(pods, (container,), pod_level=False)),
    )


def _running(pod: Mapping[str, Any], container: str) -> bool:
    if pod.get("metadata", {}).get("deletionTimestamp"):
        return False
    return any(
        s.get("name") == container and "running" in (s.get("state") or {})
        for s in _statuses(pod.get("status", {}))
    )
