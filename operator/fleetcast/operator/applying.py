"""Making the cluster match the manifests: server-side apply, HPA hand-over, pruning.

Server-side apply with one field manager ("fleetcast-operator") and force:
the operator owns exactly the fields it renders, takes them back from anyone
who edited them by hand, and leaves every other field (other controllers',
users' extra labels) alone. Applying an unchanged manifest writes nothing, so
a re-apply after a restart is free and rolls no pod.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from typing import Any, Final

from fleetcast.operator import rendering
from fleetcast.operator.kube import Kube, Manifest
from fleetcast.operator.rendering import MANAGER, ObjectRef

logger = logging.getLogger(__name__)

#: Field manager that keeps spec.replicas while the HPA takes it over.
HANDOVER_MANAGER: Final = "fleetcast-operator-handover"


def apply_all(
    kube: Kube, namespace: str, manifests: Iterable[Manifest], obsolete: Iterable[ObjectRef]
) -> None:
    """Apply every manifest in order, then delete what the spec no longer wants."""
    manifests = list(manifests)
    for manifest in manifests:
        if _scaled_by_hpa(manifest):
            manifest = prepare_scaled(kube, manifest, _min_replicas(manifests))
        kube.apply(manifest, manager=MANAGER)
    for ref in obsolete:
        if kube.delete(ref.api_version, ref.kind, namespace, ref.name):
            logger.info("deleted %s %s/%s", ref.kind, namespace, ref.name)


def prepare_scaled(kube: Kube, deployment: Manifest, initial: int) -> Manifest:
    """The HPA-scaled Deployment as it should be applied now.

    A new one starts at the HPA's minimum (the Deployment default of 1 would
    report Ready and then scale up); an existing one is applied without
    replicas, after handing the field over if the operator still owns it.
    """
    meta = deployment["metadata"]
    live = kube.get("apps/v1", "Deployment", meta["namespace"], meta["name"])
    if live is None:
        return {**deployment, "spec": {"replicas": initial, **deployment["spec"]}}
    if owns_replicas(live, MANAGER):
        hand_over_replicas(kube, live)
    return deployment


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


def _min_replicas(manifests: list[Manifest]) -> int:
    for manifest in manifests:
        if manifest["kind"] == "HorizontalPodAutoscaler":
            minimum: int = manifest["spec"]["minReplicas"]
            return minimum
    return 1


def _scaled_by_hpa(manifest: Manifest) -> bool:
    return (
        manifest["kind"] == "Deployment"
        and manifest["metadata"]["labels"].get("app.kubernetes.io/component") == rendering.GATEWAY
        and "replicas" not in manifest["spec"]
    )
