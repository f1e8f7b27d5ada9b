"""Reconciling one FleetBroadcast: spec in, owned objects and status out.

The kopf handlers, the owned-object watches and the periodic resync all come
here. Every path ends in :meth:`Reconciler.publish_status`, which recomputes
the whole status from fresh reads and writes it only if it changed, guarded by
the FleetBroadcast's resourceVersion: concurrent writers (a reconcile and a
Deployment status event in two kopf threads) retry instead of overwriting
each other.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import pydantic

from fleetcast.operator import applying, conditions, drift, rendering, reporting, secretrefs
from fleetcast.operator import spec as crd
from fleetcast.operator.conditions import Condition, Rollout
from fleetcast.operator.kube import FLEETBROADCAST, ApiError, Kube

logger = logging.getLogger(__name__)

STATUS_ATTEMPTS: Final = 5
INVALID_SPEC: Final = "InvalidSpec"


def _now() -> datetime:
    return datetime.now(UTC)


def owner_of(body: Mapping[str, Any]) -> rendering.Owner:
    meta = body["metadata"]
    return rendering.Owner(meta["name"], meta["namespace"], meta["uid"])


def controller_of(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the FleetBroadcast controlling an owned object, if any."""
    for ref in body.get("metadata", {}).get("ownerReferences", []):
        if ref.get("kind") == crd.KIND and ref.get("apiVersion", "").startswith(crd.API_GROUP):
            return ref["name"], ref["uid"]
    return None


@dataclass
class Reconciler:
    kube: Kube
    clock: Callable[[], datetime] = field(default=_now)

    def reconcile(self, body: Mapping[str, Any]) -> Condition:
        """Apply the desired state of ``body``; returns its Degraded condition.

        A spec the model rejects or a missing Secret is reported in the status
        and returned, not raised: retrying would not fix it. A refused apply
        is raised (kopf retries it with backoff) after being reported.
        """
        owner, generation = owner_of(body), body["metadata"].get("generation", 0)
        try:
            spec = crd.parse(body.get("spec"))
        except pydantic.ValidationError as error:
            message = (
                f"spec does not match the operator's model: {error.error_count()} error(s): {error}"
            )
            invalid = Condition(conditions.DEGRADED, "True", INVALID_SPEC, message, generation)
            failed = Condition(conditions.RECONCILED, "False", INVALID_SPEC, message, generation)
            self.publish_status(body, reconciled=failed, degraded=invalid)
            return invalid
        fetch = self._secret_fetcher(owner.namespace)
        degraded = secretrefs.degraded(
            secretrefs.problems(secretrefs.referenced(spec), fetch), generation
        )
        try:
            applying.apply_all(
                self.kube,
                owner.namespace,
                rendering.render(spec, owner),
                rendering.obsolete(spec, owner),
            )
        except ApiError as error:
            failed = Condition(
                conditions.RECONCILED, "False", "ApplyFailed", str(error), generation
            )
            self.publish_status(body, reconciled=failed, degraded=degraded)
            raise
        applied = Condition(
            conditions.RECONCILED, "True", "Applied", f"generation {generation} applied", generation
        )
        logger.info("reconciled %s/%s generation %s", owner.namespace, owner.name, generation)
        self.publish_status(body, reconciled=applied, degraded=degraded)
        return degraded

    def on_owned_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """An owned object changed or went away: repair drift, refresh the status."""
        controller = controller_of(body)
        namespace = body.get("metadata", {}).get("namespace")
        if controller is None or namespace is None:
            return
        owner = self.kube.get(*FLEETBROADCAST, namespace, controller[0])
        if owner is None or owner["metadata"]["uid"] != controller[1] or _deleting(owner):
            return
        found = ["(deleted)"] if event_type == "DELETED" else self.drifted(owner, body)
        if found:
            what = f"{body['kind']} {body['metadata']['name']}"
            logger.warning(
                "drift in %s of %s/%s: %s", what, namespace, controller[0], ", ".join(found)
            )
            self.announce(
                owner, "Normal", "DriftRepaired", f"{what} restored ({', '.join(found[:5])})"
            )
            self.reconcile(owner)
        elif body.get("kind") == "Deployment":
            self.publish_status(owner)

    def drifted(self, owner: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
        """Paths where ``live`` differs from what ``owner``'s spec renders for it."""
        try:
            spec = crd.parse(owner.get("spec"))
        except pydantic.ValidationError:
            return []
        for manifest in rendering.render(spec, owner_of(owner)):
            same_kind = manifest["kind"] == live.get("kind")
            if same_kind and manifest["metadata"]["name"] == live["metadata"]["name"]:
                return drift.differences(manifest, live)
        return []

    def publish_status(
        self,
        body: Mapping[str, Any],
        *,
        reconciled: Condition | None = None,
        degraded: Condition | None = None,
    ) -> None:
        """Recompute and store the status of the FleetBroadcast ``body`` names."""
        meta = body["metadata"]
        namespace, name = meta["namespace"], meta["name"]
        for _ in range(STATUS_ATTEMPTS):
            current = self.kube.get(*FLEETBROADCAST, namespace, name)
            if current is None or current["metadata"]["uid"] != meta["uid"] or _deleting(current):
                return
            before = current.get("status") or {}
            stored = conditions.find(before.get("conditions", []), conditions.RECONCILED)
            if reconciled is None and stored is None:
                return  # not reconciled yet: that reconcile writes the first status
            status = conditions.build_status(
                generation=current["metadata"].get("generation", 0),
                previous=before,
                reconciled=reconciled,
                degraded=degraded,
                gateway=Rollout.of(self._deployment(namespace, name, rendering.GATEWAY)),
                consumer=Rollout.of(self._deployment(namespace, name, rendering.CONSUMER)),
                now=self.clock(),
            )
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
            for kind, reason, message in reporting.transitions(
                before.get("conditions", []), status["conditions"]
            ):
                self.announce(current, kind, reason, message)
            return
        logger.warning("status of %s/%s not written: it kept changing", namespace, name)

    def announce(
        self, owner: Mapping[str, Any], kind: reporting.EventType, reason: str, message: str
    ) -> None:
        """Post an Event; losing one is logged, never fatal."""
        try:
            self.kube.create(reporting.event(owner, kind, reason, message, self.clock()))
        except ApiError as error:
            logger.warning("event %s not posted: %s", reason, error)

    def _deployment(self, namespace: str, name: str, component: str) -> dict[str, Any] | None:
        owner = rendering.Owner(name, namespace, "")
        return self.kube.get(
            "apps/v1", "Deployment", namespace, rendering.name_of(owner, component)
        )

    def _secret_fetcher(self, namespace: str) -> Callable[[str], Mapping[str, Any] | None]:
        def fetch(name: str) -> Mapping[str, Any] | None:
            return self.kube.get("v1", "Secret", namespace, name)

        return fetch


def _deleting(body: Mapping[str, Any]) -> bool:
    return bool(body["metadata"].get("deletionTimestamp"))
