"""Desired state: a FleetBroadcast spec -> the manifests the operator applies. Pure.

Everything is derived from the spec and the owner's name, namespace and uid,
deterministically (same input, same bytes), so re-applying after an operator
restart changes nothing and rolls no pod. Every object carries the same
labels, is owned by the FleetBroadcast (deletion cascades through the garbage
collector, no finalizer) and names only fields the operator means to own under
server-side apply: the gateway Deployment has no ``replicas`` while an HPA
scales it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fleetcast.operator import configs
from fleetcast.operator.spec import API_GROUP, API_VERSION, KIND, FleetBroadcastSpec

GATEWAY: Final = "gateway"
CONSUMER: Final = "consumer"
MANAGER: Final = "fleetcast-operator"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
CONFIG_HASH_ANNOTATION: Final = "fleetcast.radiofleet.io/config-hash"
#: Seconds the kubelet waits after the gateway's drain before it kills the pod.
TERMINATION_MARGIN_SECONDS: Final = 10
#: The longest suffix of an owned object's name (``<name>-consumer-config``).
LONGEST_SUFFIX: Final = "-consumer-config"
#: The image's numeric non-root user (Dockerfile: useradd --uid 10001).
RUN_AS: Final = 10001
Manifest = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Owner:
    """The FleetBroadcast the objects belong to."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str


def name_of(owner: Owner, component: str, suffix: str = "") -> str:
    return f"{owner.name}-{component}{suffix}"


def selector_labels(owner: Owner, component: str) -> dict[str, str]:
    """The immutable Deployment selector: never add to it."""
    return {
        "app.kubernetes.io/name": "fleetcast",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": component,
    }


def labels(owner: Owner, component: str) -> dict[str, str]:
    return {
        **selector_labels(owner, component),
        "app.kubernetes.io/part-of": "fleetcast",
        LABEL_MANAGED_BY: MANAGER,
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def render(spec: FleetBroadcastSpec, owner: Owner) -> list[Manifest]:
    """Every object of one FleetBroadcast, in the order they are applied."""
    manifests = [
        service_account(owner, GATEWAY),
        service_account(owner, CONSUMER),
        config_map(owner, GATEWAY, configs.gateway_env(spec)),
        config_map(owner, CONSUMER, configs.consumer_env(spec)),
        gateway_service(spec, owner),
        gateway_deployment(spec, owner),
        consumer_deployment(spec, owner),
        gateway_disruption_budget(spec, owner),
    ]
    if spec.gateway.autoscaling.enabled:
        manifests.append(gateway_autoscaler(spec, owner))
    return manifests


def obsolete(spec: FleetBroadcastSpec, owner: Owner) -> list[ObjectRef]:
    """Objects an earlier spec may have created that this one no longer wants."""
    if spec.gateway.autoscaling.enabled:
        return []
    return [ObjectRef("autoscaling/v2", "HorizontalPodAutoscaler", name_of(owner, GATEWAY))]


def _object(api_version: str, kind: str, name: str, owner: Owner, component: str) -> Manifest:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": labels(owner, component),
            "ownerReferences": [owner_reference(owner)],
        },
    }


def service_account(owner: Owner, component: str) -> Manifest:
    """A pod identity of its own with no API token: the pods never call Kubernetes."""
    manifest = _object("v1", "ServiceAccount", name_of(owner, component), owner, component)
    manifest["automountServiceAccountToken"] = False
    return manifest


def config_map(owner: Owner, component: str, data: dict[str, str]) -> Manifest:
    name = name_of(owner, component, "-config")
    manifest = _object("v1", "ConfigMap", name, owner, component)
    manifest["data"] = dict(sorted(data.items()))
    return manifest


def gateway_service(spec: FleetBroadcastSpec, owner: Owner) -> Manifest:
    service = spec.gateway.service
    manifest = _object("v1", "Service", name_of(owner, GATEWAY), owner, GATEWAY)
    if service.annotations:
        manifest["metadata"]["annotations"] = dict(service.annotations)
    manifest["spec"] = {
        "type": service.type,
        "selector": selector_labels(owner, GATEWAY),
        "ports": [{"name": "http", "port": service.port, "targetPort": "http", "protocol": "TCP"}],
        "sessionAffinity": service.session_affinity,
    }
    return manifest


def gateway_deployment(spec: FleetBroadcastSpec, owner: Owner) -> Manifest:
    gateway = spec.gateway
    pod = PodShape(
        component=GATEWAY,
        command="fleetcast-gateway",
        port=configs.GATEWAY_PORT,
        env=configs.gateway_env(spec),
        secret_env=configs.gateway_secret_env(spec),
        resources={"requests": gateway.resources.requests, "limits": gateway.resources.limits},
        grace_seconds=gateway.drain_seconds + TERMINATION_MARGIN_SECONDS,
    )
    replicas = None if gateway.autoscaling.enabled else gateway.replicas
    manifest = _deployment(spec, owner, pod, replicas)
    manifest["spec"]["template"]["spec"]["topologySpreadConstraints"] = [
        _spread(owner, "kubernetes.io/hostname"),
        _spread(owner, "topology.kubernetes.io/zone"),
    ]
    return manifest


def consumer_deployment(spec: FleetBroadcastSpec, owner: Owner) -> Manifest:
    consumer = spec.consumer
    pod = PodShape(
        component=CONSUMER,
        command="fleetcast-consumer",
        port=configs.CONSUMER_PORT,
        env=configs.consumer_env(spec),
        secret_env=configs.consumer_secret_env(spec),
        resources={"requests": consumer.resources.requests, "limits": consumer.resources.limits},
        grace_seconds=30,
    )
    return _deployment(spec, owner, pod, consumer.replicas)


def gateway_autoscaler(spec: FleetBroadcastSpec, owner: Owner) -> Manifest:
    scaling = spec.gateway.autoscaling
    name = name_of(owner, GATEWAY)
    cpu = {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {
                "type": "Utilization",
                "averageUtilization": scaling.target_cpu_utilization_percentage,
            },
        },
    }
    manifest = _object("autoscaling/v2", "HorizontalPodAutoscaler", name, owner, GATEWAY)
    manifest["spec"] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
        "metrics": [cpu, *scaling.metrics],
        # Each removed gateway reconnects its clients elsewhere: scale in slowly.
        "behavior": {
            "scaleDown": {
                "stabilizationWindowSeconds": 300,
                "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
            }
        },
    }
    return manifest


def gateway_disruption_budget(spec: FleetBroadcastSpec, owner: Owner) -> Manifest:
    name = name_of(owner, GATEWAY)
    manifest = _object("policy/v1", "PodDisruptionBudget", name, owner, GATEWAY)
    manifest["spec"] = {
        "maxUnavailable": spec.gateway.pod_disruption_budget.max_unavailable,
        "selector": {"matchLabels": selector_labels(owner, GATEWAY)},
        # An unhealthy pod never blocks a node drain.
        "unhealthyPodEvictionPolicy": "AlwaysAllow",
    }
    return manifest


@dataclass(frozen=True, slots=True)
class PodShape:
    """What differs between the gateway's and the consumer's pods."""

    component: str
    command: str
    port: int
    env: dict[str, str]
    secret_env: list[dict[str, Any]]
    resources: dict[str, Any]
    grace_seconds: int


def _deployment(
    spec: FleetBroadcastSpec, owner: Owner, pod: PodShape, replicas: int | None
) -> Manifest:
    name = name_of(owner, pod.component)
    manifest = _object("apps/v1", "Deployment", name, owner, pod.component)
    manifest["spec"] = {
        **({} if replicas is None else {"replicas": replicas}),
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": selector_labels(owner, pod.component)},
        # Never fewer ready pods than wanted during a rollout.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
        },
        "template": _pod_template(spec, owner, pod),
    }
    return manifest


def _pod_template(spec: FleetBroadcastSpec, owner: Owner, pod: PodShape) -> Manifest:
    digest = configs.config_hash(pod.env, pod.secret_env)
    pod_spec: Manifest = {
        "serviceAccountName": name_of(owner, pod.component),
        "automountServiceAccountToken": False,
        # Service links would inject <SERVICE>_PORT=tcp://... variables, which
        # can collide with FLEETCAST_* settings (a Service named "fleetcast").
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": pod.grace_seconds,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, owner, pod)],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in spec.image_pull_secrets]
    return {
        "metadata": {
            "labels": labels(owner, pod.component),
            "annotations": {CONFIG_HASH_ANNOTATION: digest},
        },
        "spec": pod_spec,
    }


def _container(spec: FleetBroadcastSpec, owner: Owner, pod: PodShape) -> Manifest:
    container: Manifest = {
        "name": pod.component,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": [pod.command],
        "ports": [{"name": "http", "containerPort": pod.port, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": name_of(owner, pod.component, "-config")}}],
        "startupProbe": _probe("/health", period=2, failures=30),
        "livenessProbe": _probe("/health", period=10, failures=3),
        "readinessProbe": _probe("/ready", period=5, failures=2),
        "resources": {key: dict(value) for key, value in pod.resources.items() if value},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if pod.secret_env:
        container["env"] = pod.secret_env
    return container


def _probe(path: str, *, period: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": "http"},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def _spread(owner: Owner, topology_key: str) -> Manifest:
    """Prefer gateways on distinct nodes/zones; never block scheduling for it."""
    return {
        "maxSkew": 1,
        "topologyKey": topology_key,
        "whenUnsatisfiable": "ScheduleAnyway",
        "labelSelector": {"matchLabels": selector_labels(owner, GATEWAY)},
    }
