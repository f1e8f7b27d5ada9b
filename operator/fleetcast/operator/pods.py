"""The gateway and consumer Deployments and their pod templates. Pure.

Both components run the one image with a different command; what differs is
a :class:`PodShape`. A gateway pod is built for rollouts without reconnect
storms (docs/operator.md, "Rollouts"): new pods come up first (maxSurge,
maxUnavailable 0, minReadySeconds), a leaving pod keeps serving for
``preStopSeconds`` while the Service's endpoints forget it (a preStop sleep,
no shell needed), then hands its clients over at the spec's rate, within a
grace period computed from its connection limit and that rate. With consumer
placement ``sidecar`` the consumer is a second container of each gateway pod.

Pods spread over nodes (hard by default) and zones, counted per rollout
(``matchLabelKeys: [pod-template-hash]``), so a rollout's new pods spread even
while the old ones still stand. The template's config hash covers the
ConfigMap, the Secret keys used and a digest of their values (:mod:`.configs`),
so a rotated Secret rolls exactly the pods that read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from fleetcast.operator import configs, objects
from fleetcast.operator.objects import CONSUMER, GATEWAY, Manifest, Owner
from fleetcast.operator.spec import FleetBroadcastSpec
from fleetcast.operator.workloads import Pod, TopologySpread

#: The image's numeric non-root user (Dockerfile: useradd --uid 10001).
RUN_AS: Final = 10001
#: Seconds a stopping consumer gets to commit and leave its group.
CONSUMER_GRACE_SECONDS: Final = 30
#: Name of the sidecar consumer's port (the gateway's is "http").
SIDECAR_PORT: Final = "consumer"
SPREAD_KEYS: Final = {"nodes": "kubernetes.io/hostname", "zones": "topology.kubernetes.io/zone"}
Digests = Mapping[tuple[str, str], str]


@dataclass(frozen=True, slots=True)
class PodShape:
    """What differs between the gateway's and the consumer's containers."""

    component: str
    command: str
    port: int
    port_name: str
    env: dict[str, str]
    secret_env: list[dict[str, Any]]
    resources: dict[str, Any]
    #: Probe readiness: False for a sidecar consumer, whose Kafka trouble must not
    #: take its gateway out of the Service.
    readiness: bool = True
    pre_stop_seconds: int = 0


def gateway_shape(spec: FleetBroadcastSpec) -> PodShape:
    gateway = spec.gateway
    return PodShape(
        component=GATEWAY,
        command="fleetcast-gateway",
        port=configs.GATEWAY_PORT,
        port_name="http",
        env=configs.gateway_env(spec),
        secret_env=configs.gateway_secret_env(spec),
        resources={"requests": gateway.resources.requests, "limits": gateway.resources.limits},
        pre_stop_seconds=gateway.rollout.pre_stop_seconds,
    )


def consumer_shape(spec: FleetBroadcastSpec, *, sidecar: bool = False) -> PodShape:
    consumer = spec.consumer
    return PodShape(
        component=CONSUMER,
        command="fleetcast-consumer",
        port=configs.CONSUMER_PORT,
        port_name=SIDECAR_PORT if sidecar else "http",
        env=configs.consumer_env(spec),
        secret_env=configs.consumer_secret_env(spec),
        resources={"requests": consumer.resources.requests, "limits": consumer.resources.limits},
        readiness=not sidecar,
    )


def sidecar(spec: FleetBroadcastSpec) -> bool:
    return spec.consumer.placement == "sidecar"


def gateway_deployment(spec: FleetBroadcastSpec, owner: Owner, digests: Digests) -> Manifest:
    gateway, timing = spec.gateway, configs.drain_timing(spec)
    shapes = [gateway_shape(spec)]
    if sidecar(spec):
        shapes.append(consumer_shape(spec, sidecar=True))
    replicas = None if gateway.autoscaling.enabled else gateway.replicas
    manifest = _deployment(owner, GATEWAY, replicas, gateway.rollout.max_surge)
    manifest["spec"]["minReadySeconds"] = gateway.rollout.min_ready_seconds
    manifest["spec"]["progressDeadlineSeconds"] = gateway.rollout.progress_deadline_seconds
    manifest["spec"]["template"] = _template(
        spec, owner, GATEWAY, shapes, digests, grace=timing.grace_seconds
    )
    return manifest


def consumer_deployment(spec: FleetBroadcastSpec, owner: Owner, digests: Digests) -> Manifest:
    consumer = spec.consumer
    replicas = None if consumer.autoscaling.enabled else consumer.replicas
    manifest = _deployment(owner, CONSUMER, replicas, 1)
    shapes = [consumer_shape(spec)]
    manifest["spec"]["template"] = _template(
        spec, owner, CONSUMER, shapes, digests, grace=CONSUMER_GRACE_SECONDS
    )
    return manifest


def _deployment(owner: Owner, component: str, replicas: int | None, surge: int) -> Manifest:
    name = objects.name_of(owner, component)
    manifest = objects.owned_object("apps/v1", "Deployment", name, owner, component)
    manifest["spec"] = {
        **({} if replicas is None else {"replicas": replicas}),
        "revisionHistoryLimit": 5,
        "selector": {"matchLabels": objects.selector_labels(owner, component)},
        # Never fewer ready pods than wanted during a rollout: new ones first.
        "strategy": {
            "type": "RollingUpdate",
            "rollingUpdate": {"maxSurge": surge, "maxUnavailable": 0},
        },
    }
    return manifest


def _template(
    spec: FleetBroadcastSpec,
    owner: Owner,
    component: str,
    shapes: list[PodShape],
    digests: Digests,
    *,
    grace: int,
) -> Manifest:
    placement = _placement(spec, component)
    env = {f"{s.component}:{k}": v for s in shapes for k, v in s.env.items()}
    secret_env = [entry for s in shapes for entry in s.secret_env]
    pod_spec: Manifest = {
        "serviceAccountName": objects.name_of(owner, component),
        "automountServiceAccountToken": False,
        # Service links would inject <SERVICE>_PORT=tcp://... variables, which
        # can collide with FLEETCAST_* settings (a Service named "fleetcast").
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace,
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUN_AS,
            "runAsGroup": RUN_AS,
            "fsGroup": RUN_AS,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
        "containers": [_container(spec, owner, shape) for shape in shapes],
        "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
        "topologySpreadConstraints": _spread(owner, component, _spread_of(spec, component)),
        **_scheduling(placement),
    }
    if spec.image_pull_secrets:
        pod_spec["imagePullSecrets"] = [{"name": name} for name in spec.image_pull_secrets]
    annotations = dict(placement.annotations or {})
    annotations[objects.CONFIG_HASH_ANNOTATION] = configs.config_hash(env, secret_env, digests)
    labels = {**(placement.labels or {}), **objects.labels(owner, component)}
    return {"metadata": {"labels": labels, "annotations": annotations}, "spec": pod_spec}


def _placement(spec: FleetBroadcastSpec, component: str) -> Pod:
    return spec.gateway.pod if component == GATEWAY else spec.consumer.pod


def _spread_of(spec: FleetBroadcastSpec, component: str) -> TopologySpread:
    return spec.gateway.topology_spread if component == GATEWAY else spec.consumer.topology_spread


def _scheduling(placement: Pod) -> Manifest:
    """nodeSelector, tolerations, affinity and priorityClassName, where the spec sets them."""
    found: Manifest = {}
    if placement.node_selector:
        found["nodeSelector"] = dict(placement.node_selector)
    if placement.tolerations:
        found["tolerations"] = [
            t.model_dump(mode="json", by_alias=True, exclude_none=True)
            for t in placement.tolerations
        ]
    if placement.affinity:
        found["affinity"] = dict(placement.affinity)
    if placement.priority_class_name:
        found["priorityClassName"] = placement.priority_class_name
    return found


def _spread(owner: Owner, component: str, spread: TopologySpread) -> list[Manifest]:
    """One constraint per spread level the spec keeps, counted within one rollout."""
    constraints = []
    for level, mode in (("nodes", spread.nodes), ("zones", spread.zones)):
        if mode == "off":
            continue
        constraints.append(
            {
                "maxSkew": 1,
                "topologyKey": SPREAD_KEYS[level],
                "whenUnsatisfiable": "DoNotSchedule" if mode == "required" else "ScheduleAnyway",
                "labelSelector": {"matchLabels": objects.selector_labels(owner, component)},
                "matchLabelKeys": ["pod-template-hash"],
            }
        )
    return constraints


def _container(spec: FleetBroadcastSpec, owner: Owner, pod: PodShape) -> Manifest:
    port = pod.port_name
    container: Manifest = {
        "name": pod.component,
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "command": [pod.command],
        "ports": [{"name": port, "containerPort": pod.port, "protocol": "TCP"}],
        "envFrom": [{"configMapRef": {"name": objects.name_of(owner, pod.component, "-config")}}],
        "startupProbe": _probe("/health", port, period=2, failures=30),
        "livenessProbe": _probe("/health", port, period=10, failures=3),
        "resources": {key: dict(value) for key, value in pod.resources.items() if value},
        "securityContext": {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "privileged": False,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    }
    if pod.readiness:
        container["readinessProbe"] = _probe("/ready", port, period=5, failures=2)
    if pod.pre_stop_seconds:
        # Keep serving while the endpoints forget this pod; the hand-over starts after.
        container["lifecycle"] = {"preStop": {"sleep": {"seconds": pod.pre_stop_seconds}}}
    if pod.secret_env:
        container["env"] = pod.secret_env
    return container


def _probe(path: str, port: str, *, period: int, failures: int) -> Manifest:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }
