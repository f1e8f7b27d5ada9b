"""Desired state: a FleetBroadcast spec -> the manifests the operator applies. Pure.

Everything is derived from the spec, the owner's name, namespace and uid, and
the digests of the Secret values the pods read, deterministically (same
input, same bytes), so re-applying after an operator restart changes nothing
and rolls no pod. Every object carries the same labels, is owned by the
FleetBroadcast (deletion cascades through the garbage collector, no
finalizer) and names only fields the operator means to own under server-side
apply: a Deployment has no ``replicas`` while an autoscaler scales it. This
module renders the small objects and the list; :mod:`.pods` the Deployments,
:mod:`.scaling` the autoscalers, :mod:`.monitoring` the PodMonitor.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from fleetcast.operator import configs, monitoring, pods, scaling
from fleetcast.operator.objects import (
    CONFIG_HASH_ANNOTATION,
    CONSUMER,
    GATEWAY,
    KEDA_API,
    LABEL_MANAGED_BY,
    LONGEST_SUFFIX,
    MANAGER,
    MONITORING_API,
    Manifest,
    ObjectRef,
    Owner,
    labels,
    name_of,
    owned_object,
    owner_reference,
    selector_labels,
)
from fleetcast.operator.spec import FleetBroadcastSpec

__all__ = [
    "CONFIG_HASH_ANNOTATION",
    "CONSUMER",
    "GATEWAY",
    "LABEL_MANAGED_BY",
    "LONGEST_SUFFIX",
    "MANAGER",
    "Inputs",
    "Manifest",
    "ObjectRef",
    "Owner",
    "labels",
    "name_of",
    "obsolete",
    "owner_reference",
    "render",
    "selector_labels",
]


@dataclass(frozen=True, slots=True)
class Inputs:
    """What rendering needs besides the spec and the owner (read from the cluster first)."""

    #: (Secret name, key) -> a digest of the value (:func:`.secretrefs.digests`).
    secret_digests: Mapping[tuple[str, str], str] = field(default_factory=dict)


def render(spec: FleetBroadcastSpec, owner: Owner, inputs: Inputs | None = None) -> list[Manifest]:
    """Every object of one FleetBroadcast, in the order they are applied."""
    digests = (inputs or Inputs()).secret_digests
    manifests = [
        service_account(owner, GATEWAY),
        service_account(owner, CONSUMER),
        config_map(owner, GATEWAY, configs.gateway_env(spec)),
        config_map(owner, CONSUMER, configs.consumer_env(spec)),
        gateway_service(spec, owner),
        pods.gateway_deployment(spec, owner, digests),
        disruption_budget(owner, GATEWAY, spec.gateway.pod_disruption_budget.max_unavailable),
    ]
    if not pods.sidecar(spec):
        manifests.append(pods.consumer_deployment(spec, owner, digests))
        budget = spec.consumer.pod_disruption_budget.max_unavailable
        manifests.append(disruption_budget(owner, CONSUMER, budget))
    manifests += scaling.autoscalers(spec, owner)
    manifests += monitoring.monitors(spec, owner)
    return manifests


def obsolete(spec: FleetBroadcastSpec, owner: Owner) -> list[ObjectRef]:
    """Objects an earlier spec may have created that this one no longer wants."""
    wanted = {(m["kind"], m["metadata"]["name"]) for m in render(spec, owner)}
    return [ref for ref in optional(owner) if (ref.kind, ref.name) not in wanted]


def optional(owner: Owner) -> list[ObjectRef]:
    """Every object some spec renders and another does not."""
    gateway, consumer = name_of(owner, GATEWAY), name_of(owner, CONSUMER)
    return [
        ObjectRef("apps/v1", "Deployment", consumer),
        ObjectRef("policy/v1", "PodDisruptionBudget", consumer),
        ObjectRef("autoscaling/v2", "HorizontalPodAutoscaler", gateway),
        ObjectRef(KEDA_API, "ScaledObject", gateway),
        ObjectRef(KEDA_API, "ScaledObject", consumer),
        ObjectRef(KEDA_API, "TriggerAuthentication", consumer),
        ObjectRef(MONITORING_API, "PodMonitor", name_of(owner, "pods")),
    ]


def service_account(owner: Owner, component: str) -> Manifest:
    """A pod identity of its own with no API token: the pods never call Kubernetes."""
    manifest = owned_object("v1", "ServiceAccount", name_of(owner, component), owner, component)
    manifest["automountServiceAccountToken"] = False
    return manifest


def config_map(owner: Owner, component: str, data: dict[str, str]) -> Manifest:
    name = name_of(owner, component, "-config")
    manifest = owned_object("v1", "ConfigMap", name, owner, component)
    manifest["data"] = dict(sorted(data.items()))
    return manifest


def gateway_service(spec: FleetBroadcastSpec, owner: Owner) -> Manifest:
    service = spec.gateway.service
    manifest = owned_object("v1", "Service", name_of(owner, GATEWAY), owner, GATEWAY)
    if service.annotations:
        manifest["metadata"]["annotations"] = dict(service.annotations)
    manifest["spec"] = {
        "type": service.type,
        "selector": selector_labels(owner, GATEWAY),
        "ports": [{"name": "http", "port": service.port, "targetPort": "http", "protocol": "TCP"}],
        "sessionAffinity": service.session_affinity,
    }
    return manifest


def disruption_budget(owner: Owner, component: str, max_unavailable: int) -> Manifest:
    name = name_of(owner, component)
    manifest = owned_object("policy/v1", "PodDisruptionBudget", name, owner, component)
    manifest["spec"] = {
        "maxUnavailable": max_unavailable,
        "selector": {"matchLabels": selector_labels(owner, component)},
        # An unhealthy pod never blocks a node drain.
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }
    return manifest
