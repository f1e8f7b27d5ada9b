"""Reconciling one FleetBroadcast: spec in, owned objects and their outcomes out.

The kopf handlers, the owned-object and pod watches, the prober and the
periodic resync all come here. A reconcile reads the Secrets the spec names
(existence, keys, a digest of the values for the config hash), renders,
applies every object on its own (:mod:`.applying`), posts an Event for every
repair it actually made, and ends in :meth:`Reconciler.publish_status`
(:mod:`.publishing`), which recomputes the whole status from fresh reads.

One FleetBroadcast is worked on by one thread at a time (a lock per
FleetBroadcast); status refreshes asked for while one runs are merged into
the next one, so a burst of pod events costs one status write.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import pydantic

from fleetcast.operator import applying, claiming, drift, rendering, secretrefs
from fleetcast.operator import spec as crd
from fleetcast.operator.applying import Outcome
from fleetcast.operator.conditions import RECONCILED, Condition
from fleetcast.operator.kube import FLEETBROADCAST, Kube
from fleetcast.operator.opmetrics import Metrics
from fleetcast.operator.publishing import Publisher

logger = logging.getLogger(__name__)

INVALID_SPEC: Final = "InvalidSpec"
CONFLICT: Final = "Conflict"
APPLY_FAILED: Final = "ApplyFailed"
Key = tuple[str, str]
Digests = dict[tuple[str, str], str]


class ApplyFailed(Exception):
    """Some objects were refused; the status says which. kopf retries the handler."""


def _now() -> datetime:
    return datetime.now(UTC)


def owner_of(body: Mapping[str, Any]) -> rendering.Owner:
    meta = body["metadata"]
    return rendering.Owner(meta["name"], meta["namespace"], meta["uid"])


def key_of(body: Mapping[str, Any]) -> Key:
    return body["metadata"]["namespace"], body["metadata"]["name"]


def controller_of(body: Mapping[str, Any]) -> tuple[str, str] | None:
    """(name, uid) of the FleetBroadcast controlling an owned object, if any."""
    for ref in body.get("metadata", {}).get("ownerReferences", []):
        if ref.get("kind") == crd.KIND and ref.get("apiVersion", "").startswith(crd.API_GROUP):
            return ref["name"], ref["uid"]
    return None


def initial_replicas(
    spec: crd.FleetBroadcastSpec, body: Mapping[str, Any], owner: rendering.Owner
) -> dict[str, int]:
    """Replicas a new autoscaled Deployment starts with: the last count seen, else the minimum.

    A gateway Deployment deleted by hand comes back with as many pods as it
    had (the status remembers), not at the autoscaler's minimum.
    """
    status = body.get("status") or {}
    found: dict[str, int] = {}
    scaling = spec.gateway.autoscaling
    if scaling.enabled:
        last = (status.get("gateway") or {}).get("replicas") or 0
        count = min(max(last, scaling.min_replicas), scaling.max_replicas)
        found[rendering.name_of(owner, rendering.GATEWAY)] = count
    consumer = spec.consumer.autoscaling
    if consumer.enabled:
        last = (status.get("consumer") or {}).get("replicas") or 0
        count = min(max(last, consumer.min_replicas), consumer.max_replicas)
        found[rendering.name_of(owner, rendering.CONSUMER)] = count
    return found


def verdict(generation: int, outcomes: list[Outcome], secrets: Condition | None) -> Condition:
    """Reconciled: applied, or the first failure's reason with every failure in the message."""
    conflicts = [o.detail for o in outcomes if o.action == "conflict"]
    failed = [f"{o.what}: {o.detail}" for o in outcomes if o.action == "failed"]
    problems: list[tuple[str, str]] = [(CONFLICT, m) for m in conflicts]
    if secrets is not None:
        problems.append((secrets.reason, secrets.message))
    problems += [(APPLY_FAILED, m) for m in failed]
    if not problems:
        return Condition(
            RECONCILED, "True", "Applied", f"generation {generation} applied", generation
        )
    message = "; ".join(text for _, text in problems)
    return Condition(RECONCILED, "False", problems[0][0], message, generation)


def repairs(outcomes: list[Outcome], *, drifting: bool) -> list[str]:
    """What the Events say: each repair actually made (a spec change's applies are not repairs)."""
    said = []
    for o in outcomes:
        if o.action == "reclaimed":
            said.append(f"{o.what}: took back fields set by {o.detail}")
        elif o.action == "recreated":
            said.append(f"{o.what}: deleted and created again ({o.detail})")
        elif drifting and o.action == "created":
            said.append(f"{o.what} was missing: created again")
        elif drifting and o.action == "updated" and o.detail:
            said.append(f"{o.what}: restored ({o.detail})")
    return said


@dataclass
class Reconciler:
    kube: Kube
    metrics: Metrics = field(default_factory=Metrics)
    clock: Callable[[], datetime] = field(default=_now)
    #: Writes the status and Events (built from the fields above).
    status: Publisher = field(init=False)
    #: The Secret digests of each FleetBroadcast's last reconcile (rotation checks, drift).
    digests: dict[Key, Digests] = field(default_factory=dict)
    _locks: dict[Key, threading.Lock] = field(default_factory=dict)
    _pending: set[Key] = field(default_factory=set)
    _mutex: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.status = Publisher(self.kube, self.clock, self.metrics)

    @contextmanager
    def working_on(self, key: Key) -> Iterator[None]:
        """Hold the FleetBroadcast's lock (waiting counts in the queue metric)."""
        with self._mutex:
            lock = self._locks.setdefault(key, threading.Lock())
        self.metrics.waiting.inc()
        try:
            lock.acquire()
        finally:
            self.metrics.waiting.dec()
        try:
            yield
        finally:
            lock.release()

    def reconcile(self, body: Mapping[str, Any], trigger: str = "spec") -> Condition:
        """Apply the desired state of ``body``; returns its Reconciled condition.

        A spec the model rejects, a conflict or a missing Secret is reported in
        the status and returned, not raised: retrying would not fix it. Objects
        the API server refused raise :class:`ApplyFailed` after being reported
        (kopf retries), the others being applied all the same.
        """
        with self.working_on(key_of(body)), self.metrics.reconciling(trigger):
            found = self._reconcile(body, trigger)
        self.metrics.reconciles.labels(trigger, found.reason).inc()
        if not found.is_true:
            self.metrics.errors.labels(found.reason).inc()
            if found.reason == APPLY_FAILED:
                raise ApplyFailed(found.message)
        return found

    def _reconcile(self, body: Mapping[str, Any], trigger: str) -> Condition:
        owner, generation = owner_of(body), body["metadata"].get("generation", 0)
        try:
            spec = crd.parse(body.get("spec"))
        except pydantic.ValidationError as error:
            message = (
                f"spec does not match the operator's model: {error.error_count()} error(s): {error}"
            )
            invalid = Condition(RECONCILED, "False", INVALID_SPEC, message, generation)
            self.status.publish(body, reconciled=invalid)
            return invalid
        refs = secretrefs.referenced(spec)
        fetch = self._secret_fetcher(owner.namespace)
        missing = secretrefs.failure(secretrefs.problems(refs, fetch), generation)
        digests = secretrefs.digests(refs, fetch)
        self.digests[key_of(body)] = digests
        plan = applying.Plan(owner, initial_replicas(spec, body, owner))
        manifests = rendering.render(spec, owner, rendering.Inputs(digests))
        outcomes = applying.apply_all(self.kube, plan, manifests, rendering.obsolete(spec, owner))
        self._announce_repairs(body, outcomes, drifting=trigger != "spec")
        found = verdict(generation, outcomes, missing)
        logger.info(
            "reconciled %s/%s generation %s: %s",
            owner.namespace,
            owner.name,
            generation,
            found.reason,
        )
        self.status.publish(body, reconciled=found)
        return found

    def _announce_repairs(
        self, body: Mapping[str, Any], outcomes: list[Outcome], *, drifting: bool
    ) -> None:
        for outcome in outcomes:
            if outcome.action in ("reclaimed", "recreated", "created", "updated"):
                self.metrics.repaired.labels(outcome.kind, outcome.action).inc()
        for message in repairs(outcomes, drifting=drifting):
            logger.warning("repaired in %s/%s: %s", *key_of(body), message)
            self.status.announce(body, "Normal", "DriftRepaired", message)

    def on_owned_event(self, event_type: str | None, body: Mapping[str, Any]) -> None:
        """An owned object changed or went away: repair drift, refresh the status."""
        owner = self._owner_of(body)
        if owner is None:
            return
        found = ["(deleted)"] if event_type == "DELETED" else self.drifted(owner, body)
        if found:
            what = f"{body.get('kind')} {body.get('metadata', {}).get('name')}"
            logger.info("drift in %s of %s/%s: %s", what, *key_of(owner), ", ".join(found[:5]))
            try:
                self.reconcile(owner, trigger="drift")
            except ApplyFailed as error:
                logger.warning("drift repair of %s/%s incomplete: %s", *key_of(owner), error)
        elif body.get("kind") == "Deployment":
            self.refresh(owner)

    def on_pod_event(self, body: Mapping[str, Any]) -> None:
        """A pod of a FleetBroadcast changed: remember a finished drain, refresh the status."""
        meta = body.get("metadata", {})
        name = (meta.get("labels") or {}).get("app.kubernetes.io/instance")
        if not name or not meta.get("namespace"):
            return
        owner = self.kube.get(*FLEETBROADCAST, meta["namespace"], name)
        if owner is None or owner["metadata"].get("deletionTimestamp"):
            return
        self.status.note_pod(key_of(owner), body)
        self.refresh(owner)

    def refresh(self, owner: Mapping[str, Any]) -> None:
        """Publish the status from fresh reads; merged with any refresh already waiting."""
        key = key_of(owner)
        with self._mutex:
            if key in self._pending:
                return
            self._pending.add(key)
        with self.working_on(key):
            with self._mutex:
                self._pending.discard(key)
            self.status.publish(owner)

    def drifted(self, owner: Mapping[str, Any], live: Mapping[str, Any]) -> list[str]:
        """Where ``live`` differs from what ``owner``'s spec renders, or who else edited it."""
        try:
            spec = crd.parse(owner.get("spec"))
        except pydantic.ValidationError:
            return []
        digests = self.digests.get(key_of(owner))
        if digests is None:
            refs = secretrefs.referenced(spec)
            digests = secretrefs.digests(refs, self._secret_fetcher(owner["metadata"]["namespace"]))
        for manifest in rendering.render(spec, owner_of(owner), rendering.Inputs(digests)):
            same_kind = manifest["kind"] == live.get("kind")
            if same_kind and manifest["metadata"]["name"] == live["metadata"]["name"]:
                protected = claiming.protected_paths(manifest)
                foreign = claiming.foreign_fields(live, applying.OUR_MANAGERS, protected)
                return drift.differences(manifest, live) + [f.describe() for f in foreign]
        return []

    def secrets_changed(self, body: Mapping[str, Any]) -> bool:
        """Do the Secret values the pods read differ from the last reconcile's (a rotation)?"""
        key = key_of(body)
        try:
            spec = crd.parse(body.get("spec"))
        except pydantic.ValidationError:
            return False
        refs = secretrefs.referenced(spec)
        if not refs or key not in self.digests:
            return False
        fresh = secretrefs.digests(refs, self._secret_fetcher(key[0]))
        return fresh != self.digests[key]

    def _owner_of(self, body: Mapping[str, Any]) -> dict[str, Any] | None:
        controller = controller_of(body)
        namespace = body.get("metadata", {}).get("namespace")
        if controller is None or namespace is None:
            return None
        owner = self.kube.get(*FLEETBROADCAST, namespace, controller[0])
        if owner is None or owner["metadata"]["uid"] != controller[1]:
            return None
        return None if owner["metadata"].get("deletionTimestamp") else owner

    def _secret_fetcher(self, namespace: str) -> Callable[[str], Mapping[str, Any] | None]:
        """Gets each Secret once per call site (a reconcile asks twice: keys, then digests)."""
        seen: dict[str, Mapping[str, Any] | None] = {}

        def fetch(name: str) -> Mapping[str, Any] | None:
            if name not in seen:
                seen[name] = self.kube.get("v1", "Secret", namespace, name)
            return seen[name]

        return fetch
