"""Writing a FleetBroadcast's status and Events from fresh observations.

:meth:`Publisher.publish` reads what the status is computed from (the
FleetBroadcast, its two Deployments, their pods, the pods' latest probe
reports), builds the whole status (:mod:`.statuses`) and writes it only if it
changed, guarded by the FleetBroadcast's resourceVersion: concurrent writers
retry instead of overwriting each other. Transitions of Ready and Degraded
are posted as Events (:mod:`.reporting`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

import pydantic

from fleetcast.operator import backends, observing, rendering, reporting, statuses
from fleetcast.operator import spec as crd
from fleetcast.operator.applying import conflict_of
from fleetcast.operator.conditions import Condition
from fleetcast.operator.kube import FLEETBROADCAST, ApiError, Kube
from fleetcast.operator.observing import Rollout
from fleetcast.operator.opmetrics import Metrics

logger = logging.getLogger(__name__)

STATUS_ATTEMPTS: Final = 5
Key = tuple[str, str]
Reports = Callable[[Key], Sequence[backends.PodReport] | None]


def _no_reports(key: Key) -> Sequence[backends.PodReport] | None:
    return None


def drain_of(pod: Mapping[str, Any]) -> dict[str, Any] | None:
    """A stopped gateway container's termination message: how its hand-over ended."""
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") != rendering.GATEWAY:
            continue
        ended = (status.get("state") or {}).get("terminated") or (
            status.get("lastState") or {}
        ).get("terminated")
        if ended and ended.get("message"):
            return {
                "pod": pod["metadata"]["name"],
                "finishedAt": ended.get("finishedAt"),
                "exitCode": ended.get("exitCode"),
                "message": str(ended["message"])[:1024],
            }
    return None


@dataclass
class Publisher:
    kube: Kube
    clock: Callable[[], datetime]
    metrics: Metrics
    #: The pods' latest reports per FleetBroadcast (None: not probed yet).
    reports: Reports = field(default=_no_reports)
    probing: bool = False
    drains: dict[Key, dict[str, Any]] = field(default_factory=dict)

    def note_pod(self, key: Key, pod: Mapping[str, Any]) -> None:
        drain = drain_of(pod)
        if drain is not None:
            self.drains[key] = drain

    def publish(self, body: Mapping[str, Any], *, reconciled: Condition | None = None) -> None:
        """Recompute and store the status of the FleetBroadcast ``body`` names."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        for _ in range(STATUS_ATTEMPTS):
            current = self.kube.get(*FLEETBROADCAST, namespace, name)
            if current is None or current["metadata"]["uid"] != meta["uid"]:
                return
            if current["metadata"].get("deletionTimestamp"):
                return
            before = current.get("status") or {}
            if reconciled is None and not before.get("conditions"):
                return  # not reconciled yet: that reconcile writes the first status
            status = statuses.build(before, self.observe(current, reconciled), self.clock())
            if status == before:
                return
            try:
                self.kube.patch_status(
                    namespace, name, status, current["metadata"]["resourceVersion"]
                )
            except ApiError as error:
                if error.status == 409:
                    continue
                raise
            self.metrics.status_writes.inc()
            for kind, reason, message in reporting.transitions(
                before.get("conditions", []), status["conditions"]
            ):
                self.announce(current, kind, reason, message)
            return
        logger.warning("status of %s/%s not written: it kept changing", namespace, name)

    def observe(
        self, body: Mapping[str, Any], reconciled: Condition | None
    ) -> statuses.Observation:
        """Everything the status is computed from, read now."""
        meta = body["metadata"]
        owner = rendering.Owner(meta["name"], meta["namespace"], meta["uid"])
        key = (owner.namespace, owner.name)
        placement = _placement(body)
        gateway_pods = self._pods(owner, rendering.GATEWAY)
        gateway = self._rollout(owner, rendering.GATEWAY, gateway_pods, rendering.GATEWAY)
        if placement == "sidecar":
            consumer = observing.sidecar_rollout(gateway, gateway_pods, rendering.CONSUMER)
        else:
            pods = self._pods(owner, rendering.CONSUMER)
            consumer = self._rollout(owner, rendering.CONSUMER, pods, rendering.CONSUMER)
        reports = self.reports(key) if self.probing else None
        generation = meta.get("generation", 0)
        return statuses.Observation(
            generation=generation,
            gateway=gateway,
            consumer=consumer,
            placement=placement,
            reconciled=reconciled,
            backends=self._backends(reports, generation),
            reports=reports,
            last_drain=self.drains.get(key),
        )

    def _backends(
        self, reports: Sequence[backends.PodReport] | None, generation: int
    ) -> Condition | None:
        if not self.probing:
            return backends.condition([], generation, enabled=False)
        return None if reports is None else backends.condition(reports, generation, enabled=True)

    def _rollout(
        self, owner: rendering.Owner, component: str, pods: list[dict[str, Any]], container: str
    ) -> Rollout:
        name = rendering.name_of(owner, component)
        deployment = self.kube.get("apps/v1", "Deployment", owner.namespace, name)
        conflict = "" if deployment is None else conflict_of(deployment, owner) or ""
        rollout = Rollout.of(deployment, conflict)
        if conflict or deployment is None:
            return rollout
        return rollout.with_problems(observing.pod_problems(pods, containers=(container,)))

    def _pods(self, owner: rendering.Owner, component: str) -> list[dict[str, Any]]:
        selector = (
            f"app.kubernetes.io/instance={owner.name},app.kubernetes.io/component={component}"
        )
        return self.kube.list_objects("v1", "Pod", owner.namespace, selector)

    def announce(
        self, owner: Mapping[str, Any], kind: reporting.EventType, reason: str, message: str
    ) -> None:
        """Post an Event; losing one is logged, never fatal."""
        try:
            self.kube.create(reporting.event(owner, kind, reason, message, self.clock()))
        except ApiError as error:
            logger.warning("event %s not posted: %s", reason, error)


def _placement(body: Mapping[str, Any]) -> str:
    try:
        return crd.parse(body.get("spec")).consumer.placement
    except pydantic.ValidationError:
        return "deployment"
