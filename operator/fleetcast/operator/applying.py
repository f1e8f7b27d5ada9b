"""Making the cluster match the manifests: one object at a time, never someone else's.

Each manifest is applied on its own (:func:`apply_one`), so a refusal of one
object never keeps the others from being applied or repaired; the outcome of
each says what actually happened, for the status and the Events:

- an object of that name that the FleetBroadcast does not control (no
  controller ownerReference with its uid) is left alone and reported as a
  conflict: the operator never adopts what it did not create;
- fields other managers set on an owned object are taken back first
  (:mod:`.claiming`), so a hand edit the server cannot merge (a changed list
  key) or a hand-added field does not survive the apply;
- an apply the API server still refuses as invalid (an immutable field) is
  repaired by deleting and creating the object again: a Deployment with
  ``propagationPolicy: Orphan``, so its ReplicaSets and pods stay and the new
  Deployment adopts them (no pod restarts);
- anything else refused is a failure of that object only.

Server-side apply with one field manager ("fleetcast-operator") and force:
re-applying an unchanged manifest writes nothing, so a restart rolls no pod.
The HPA hand-over keeps the replica count when an autoscaler takes over
``spec.replicas`` (see :func:`hand_over_replicas`).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, Literal

from fleetcast.operator import claiming, conditions, drift
from fleetcast.operator.kube import ApiError, Kube, Manifest
from fleetcast.operator.rendering import MANAGER, ObjectRef, Owner

logger = logging.getLogger(__name__)

#: Field manager that keeps spec.replicas while the HPA takes it over.
HANDOVER_MANAGER: Final = "fleetcast-operator-handover"
#: Field manager of the managedFields rewrite that takes fields back.
RECLAIM_MANAGER: Final = "fleetcast-operator-reclaim"
OUR_MANAGERS: Final = (MANAGER, HANDOVER_MANAGER)
#: Kinds recreated when an apply is refused as invalid: a ConfigMap made
#: ``immutable`` by hand, a Deployment (its pods orphaned, then adopted).
RECREATED: Final = frozenset({"Deployment", "ConfigMap"})

Action = Literal[
    "created", "unchanged", "updated", "reclaimed", "recreated", "conflict", "failed", "deleted"
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one object."""

    kind: str
    name: str
    action: Action
    #: The fields restored or taken back, the conflict or the server's refusal.
    detail: str = ""

    @property
    def what(self) -> str:
        return f"{self.kind} {self.name}"

    @property
    def ok(self) -> bool:
        return self.action not in ("conflict", "failed")


@dataclass(frozen=True, slots=True)
class Plan:
    """Inputs of one reconcile's applies besides the manifests themselves."""

    owner: Owner
    #: Replicas a new autoscaled Deployment starts with (the last count seen, else the minimum).
    initial_replicas: Mapping[str, int]


def controller_uid(live: Mapping[str, Any]) -> str | None:
    """uid of the object's controller (the ownerReference with ``controller: true``)."""
    for ref in live.get("metadata", {}).get("ownerReferences") or []:
        if ref.get("controller"):
            uid: str = ref.get("uid", "")
            return uid
    return None


def conflict_of(live: Mapping[str, Any], owner: Owner) -> str | None:
    """Why ``live`` is not the FleetBroadcast's to change, or None when it is."""
    if controller_uid(live) == owner.uid:
        return None
    meta = live["metadata"]
    what = f"{live.get('kind')} {meta['name']}"
    controller = next((r for r in meta.get("ownerReferences") or [] if r.get("controller")), None)
    if controller is None:
        return f"{what} exists and is not owned by FleetBroadcast {owner.name}; delete or rename it"
    by = f"{controller.get('kind')} {controller.get('name')}"
    return f"{what} exists and is controlled by {by}, not by FleetBroadcast {owner.name}"


def apply_all(
    kube: Kube, plan: Plan, manifests: Iterable[Manifest], obsolete: Iterable[ObjectRef]
) -> list[Outcome]:
    """Apply every manifest, each on its own, then delete what the spec no longer wants."""
    outcomes = [apply_one(kube, plan, manifest) for manifest in manifests]
    for ref in obsolete:
        gone = delete_owned(kube, plan.owner, ref)
        if gone is not None:
            outcomes.append(gone)
    return outcomes


def apply_one(kube: Kube, plan: Plan, manifest: Manifest) -> Outcome:
    """Apply one manifest; never raises for a refusal of this object (see Outcome)."""
    meta = manifest["metadata"]
    kind, name = manifest["kind"], meta["name"]
    try:
        live = kube.get(manifest["apiVersion"], kind, meta["namespace"], name)
        if live is None:
            create(kube, plan, manifest)
            return Outcome(kind, name, "created")
        problem = conflict_of(live, plan.owner)
        if problem is not None:
            return Outcome(kind, name, "conflict", problem)
        return _update(kube, plan, manifest, live)
    except ApiError as error:
        logger.warning("%s %s/%s not applied: %s", kind, meta["namespace"], name, error)
        return Outcome(kind, name, "failed", error.message)


def _update(kube: Kube, plan: Plan, manifest: Manifest, live: Manifest) -> Outcome:
    kind, name = manifest["kind"], manifest["metadata"]["name"]
    restored = drift.differences(manifest, live)
    foreign = claiming.foreign_fields(live, OUR_MANAGERS, claiming.protected_paths(manifest))
    if foreign:
        take_back(kube, live, foreign)
    if _scaled(manifest) and owns_replicas(live, MANAGER):
        hand_over_replicas(kube, live)
    try:
        after = kube.apply(manifest, manager=MANAGER)
    except ApiError as error:
        if error.status != 422 or kind not in RECREATED:
            raise
        recreate(kube, plan, manifest, live)
        return Outcome(
            kind, name, "recreated", f"the API server refused the update: {error.message}"
        )
    if foreign:
        return Outcome(kind, name, "reclaimed", "; ".join(f.describe() for f in foreign))
    changed = after.get("metadata", {}).get("resourceVersion") != live["metadata"].get(
        "resourceVersion"
    )
    if changed and restored:
        return Outcome(kind, name, "updated", ", ".join(restored[:5]))
    return Outcome(kind, name, "updated" if changed else "unchanged")


def take_back(kube: Kube, live: Manifest, foreign: list[claiming.Foreign]) -> None:
    """Move other managers' fields to the operator's apply entry (guarded by resourceVersion)."""
    meta = live["metadata"]
    fields = claiming.reclaimed(live, MANAGER, foreign, conditions.timestamp(datetime.now(UTC)))
    body = {"metadata": {"resourceVersion": meta["resourceVersion"], "managedFields": fields}}
    kube.patch(
        live["apiVersion"],
        live["kind"],
        meta["namespace"],
        meta["name"],
        body,
        manager=RECLAIM_MANAGER,
    )
    logger.info(
        "took back %s of %s %s/%s",
        "; ".join(f.describe() for f in foreign),
        live["kind"],
        meta["namespace"],
        meta["name"],
    )


def recreate(kube: Kube, plan: Plan, manifest: Manifest, live: Manifest) -> None:
    """Delete (this very object, by uid) and create it again from the manifest.

    A Deployment is deleted with its ReplicaSets orphaned: the new Deployment
    has the same selector and adopts them, so no pod is restarted.
    """
    meta = live["metadata"]
    orphan = live["kind"] == "Deployment"
    kube.delete(
        live["apiVersion"],
        live["kind"],
        meta["namespace"],
        meta["name"],
        uid=meta["uid"],
        orphan=orphan,
    )
    keep = dict(plan.initial_replicas)
    if live["kind"] == "Deployment" and "replicas" in live.get("spec", {}):
        keep[manifest["metadata"]["name"]] = live["spec"]["replicas"]
    create(kube, Plan(plan.owner, keep), manifest)
    logger.warning("recreated %s %s/%s", live["kind"], meta["namespace"], meta["name"])


def delete_owned(kube: Kube, owner: Owner, ref: ObjectRef) -> Outcome | None:
    """Delete an object the spec no longer wants, only if this FleetBroadcast controls it."""
    try:
        live = kube.get(ref.api_version, ref.kind, owner.namespace, ref.name)
        if live is None or conflict_of(live, owner) is not None:
            return None
        kube.delete(
            ref.api_version, ref.kind, owner.namespace, ref.name, uid=live["metadata"]["uid"]
        )
    except ApiError as error:
        return Outcome(ref.kind, ref.name, "failed", f"not deleted: {error.message}")
    logger.info("deleted %s %s/%s", ref.kind, owner.namespace, ref.name)
    return Outcome(ref.kind, ref.name, "deleted")


def create(kube: Kube, plan: Plan, manifest: Manifest) -> None:
    """Create the object; an autoscaled Deployment at its start count, handed over at once.

    The count is applied by the operator (the Deployment default of 1 would
    report Ready and then scale up), then handed to the hand-over manager and
    left out, all in this reconcile: the next reconcile changes nothing.
    """
    first = _first(manifest, plan)
    created = kube.apply(first, manager=MANAGER)
    if first is not manifest and created:
        hand_over_replicas(kube, created)
        kube.apply(manifest, manager=MANAGER)


def _first(manifest: Manifest, plan: Plan) -> Manifest:
    """The manifest of an object being created: an autoscaled one starts at a set count.

    The Deployment default of 1 would report Ready and then scale up; the last
    count seen (a deleted Deployment) or the autoscaler's minimum avoids that.
    """
    name = manifest["metadata"]["name"]
    if not _scaled(manifest) or name not in plan.initial_replicas:
        return manifest
    return {**manifest, "spec": {"replicas": plan.initial_replicas[name], **manifest["spec"]}}


def hand_over_replicas(kube: Kube, live: Manifest) -> None:
    """Keep the current replica count when the operator stops owning spec.replicas.

    Under server-side apply, a field whose only manager stops applying it is
    removed, and the Deployment default (1 replica) takes its place: turning
    autoscaling on would first scale the gateways down to one. Kubernetes'
    documented way out: another manager applies the current value first, so
    the field stays when the operator lets go, until the HPA writes it.
    """
    meta = live["metadata"]
    handover = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": meta["name"], "namespace": meta["namespace"]},
        "spec": {"replicas": live["spec"].get("replicas", 1)},
    }
    kube.apply(handover, manager=HANDOVER_MANAGER)
    logger.info("handed spec.replicas of %s/%s over to the HPA", meta["namespace"], meta["name"])


def owns_replicas(live: Mapping[str, Any], manager: str) -> bool:
    """Does ``manager`` own spec.replicas of this object (per managedFields)?"""
    for entry in live.get("metadata", {}).get("managedFields", []):
        if entry.get("manager") != manager or entry.get("subresource"):
            continue
        if "f:replicas" in entry.get("fieldsV1", {}).get("f:spec", {}):
            return True
    return False


def _scaled(manifest: Mapping[str, Any]) -> bool:
    """A Deployment whose replica count an autoscaler owns (the manifest names none)."""
    return manifest["kind"] == "Deployment" and "replicas" not in manifest["spec"]
