"""Autoscalers: an HPA on CPU (the default), or KEDA ScaledObjects on what matters. Pure.

- ``gateway.autoscaling.engine: hpa``: an autoscaling/v2 HPA on CPU plus the
  spec's extra MetricSpecs as written; scale-in one pod a minute after a
  five-minute window, because each removed gateway moves its clients.
- ``engine: keda``: a KEDA ScaledObject with a Prometheus trigger on the
  gateways' connections per pod (the metric the gateways export) and a CPU
  trigger; KEDA makes and owns the HPA, with the same slow scale-in.
- ``consumer.autoscaling.enabled``: a ScaledObject with KEDA's Kafka trigger on
  the consumer group's lag. ``allowIdleConsumers: false`` keeps the replicas at
  or below the topics' partition count (a consumer without a partition does
  nothing). SASL credentials go through a TriggerAuthentication that points at
  the Secret the consumer uses; no value is copied.

A Deployment scaled this way carries no ``replicas`` (see :mod:`.applying` for
the hand-over when an autoscaler takes the field over).
"""

from __future__ import annotations

from typing import Any, Final

from fleetcast.operator.objects import (
    CONSUMER,
    GATEWAY,
    KEDA_API,
    Manifest,
    Owner,
    name_of,
    owned_object,
)
from fleetcast.operator.spec import FleetBroadcastSpec

#: Scale-in pace: each removed gateway reconnects its clients elsewhere.
SCALE_DOWN: Final = {
    "stabilizationWindowSeconds": 300,
    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 60}],
}
#: KEDA's spelling of the Kafka SASL mechanisms.
KEDA_SASL: Final = {
    "PLAIN": "plaintext",
    "SCRAM-SHA-256": "scram_sha256",
    "SCRAM-SHA-512": "scram_sha512",
}


def autoscalers(spec: FleetBroadcastSpec, owner: Owner) -> list[Manifest]:
    """The HPA or ScaledObjects (and TriggerAuthentication) the spec asks for."""
    found = []
    scaling = spec.gateway.autoscaling
    if scaling.enabled and scaling.engine == "hpa":
        found.append(gateway_autoscaler(spec, owner))
    if scaling.enabled and scaling.engine == "keda":
        found.append(gateway_scaled_object(spec, owner))
    if spec.consumer.autoscaling.enabled:
        if _kafka_auth(spec) is not None:
            found.append(consumer_trigger_authentication(spec, owner))
        found.append(consumer_scaled_object(spec, owner))
    return found


def _cpu(target: int) -> Manifest:
    return {
        "type": "Resource",
        "resource": {
            "name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": target},
        },
    }


def gateway_autoscaler(spec: FleetBroadcastSpec, owner: Owner) -> Manifest:
    scaling = spec.gateway.autoscaling
    name = name_of(owner, GATEWAY)
    manifest = owned_object("autoscaling/v2", "HorizontalPodAutoscaler", name, owner, GATEWAY)
    manifest["spec"] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicas": scaling.min_replicas,
        "maxReplicas": scaling.max_replicas,
        "metrics": [_cpu(scaling.target_cpu_utilization_percentage), *scaling.metrics],
        "behavior": {"scaleDown": SCALE_DOWN},
    }
    return manifest


def connections_query(owner: Owner) -> str:
    """PromQL: the gateways' open connections (namespace and pod labels from the PodMonitor)."""
    pods = f"{name_of(owner, GATEWAY)}-.*"
    return f'sum(fleetcast_gateway_connections{{namespace="{owner.namespace}",pod=~"{pods}"}})'


def gateway_scaled_object(spec: FleetBroadcastSpec, owner: Owner) -> Manifest:
    scaling = spec.gateway.autoscaling
    keda = scaling.keda
    if keda is None:  # the CRD and the model refuse such a spec
        raise ValueError("gateway.autoscaling.keda is required with engine keda")
    name = name_of(owner, GATEWAY)
    manifest = owned_object(KEDA_API, "ScaledObject", name, owner, GATEWAY)
    prometheus = {
        "type": "prometheus",
        "metadata": {
            "serverAddress": keda.prometheus_address,
            "query": connections_query(owner),
            "threshold": str(keda.connections_per_pod),
        },
    }
    cpu = {
        "type": "cpu",
        "metricType": "Utilization",
        "metadata": {"value": str(scaling.target_cpu_utilization_percentage)},
    }
    manifest["spec"] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicaCount": scaling.min_replicas,
        "maxReplicaCount": scaling.max_replicas,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": {"scaleDown": SCALE_DOWN}}},
        "triggers": [prometheus, cpu],
    }
    return manifest


def _kafka_auth(spec: FleetBroadcastSpec) -> Any:
    security = spec.kafka.security
    if security.secret_ref is None or not security.protocol.startswith("SASL"):
        return None
    return security.secret_ref


def consumer_trigger_authentication(spec: FleetBroadcastSpec, owner: Owner) -> Manifest:
    ref = _kafka_auth(spec)
    name = name_of(owner, CONSUMER)
    manifest = owned_object(KEDA_API, "TriggerAuthentication", name, owner, CONSUMER)
    manifest["spec"] = {
        "secretTargetRef": [
            {"parameter": "username", "name": ref.name, "key": ref.username_key},
            {"parameter": "password", "name": ref.name, "key": ref.password_key},
        ]
    }
    return manifest


def consumer_scaled_object(spec: FleetBroadcastSpec, owner: Owner) -> Manifest:
    kafka, scaling = spec.kafka, spec.consumer.autoscaling
    name = name_of(owner, CONSUMER)
    metadata = {
        "bootstrapServers": kafka.bootstrap_servers,
        "consumerGroup": kafka.group_id,
        "topic": ",".join(kafka.topics) if len(kafka.topics) == 1 else "",
        "lagThreshold": str(scaling.lag_threshold),
        # Never more consumers than partitions: an idle one only adds rebalances.
        "allowIdleConsumers": "false",
        "offsetResetPolicy": "latest",
    }
    if not metadata["topic"]:
        del metadata["topic"]  # every topic the group reads
    protocol = kafka.security.protocol
    if protocol.startswith("SASL"):
        metadata["sasl"] = KEDA_SASL[kafka.security.sasl_mechanism]
    if protocol in ("SSL", "SASL_SSL"):
        metadata["tls"] = "enable"
    trigger: Manifest = {"type": "kafka", "metadata": metadata}
    if _kafka_auth(spec) is not None:
        trigger["authenticationRef"] = {"name": name}
    manifest = owned_object(KEDA_API, "ScaledObject", name, owner, CONSUMER)
    manifest["spec"] = {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
        "minReplicaCount": scaling.min_replicas,
        "maxReplicaCount": scaling.max_replicas,
        "triggers": [trigger],
    }
    return manifest
