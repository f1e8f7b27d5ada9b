"""Autoscaling and scraping through the ecosystem's engines, checked by their real CRDs.

KEDA's and prometheus-operator's CRDs (tools/k8s/crds.sh, pinned versions
from the Go module proxy) are installed on the test control plane, so the
API server validates every ScaledObject, TriggerAuthentication and
PodMonitor the operator applies against the engines' own schemas. The
engines themselves do not run here: what is checked is what they would be
given.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.operator import operator_support as support

pytestmark = pytest.mark.operator


def test_keda_and_a_pod_monitor_replace_the_hpa_when_the_spec_asks(
    operators: support.Operators, namespace: str, engine_crds: list[str]
) -> None:
    cluster = operators.cluster
    operator = operators.start()
    spec: dict[str, Any] = {
        "kafka": {
            "bootstrapServers": "kafka.invalid:9092",
            "topics": ["fleet.assets"],
            "security": {
                "protocol": "SASL_SSL",
                "saslMechanism": "SCRAM-SHA-256",
                "secretRef": {"name": "sasl"},
            },
        },
        "gateway": {
            "drainSeconds": 5,
            "autoscaling": {
                "engine": "keda",
                "minReplicas": 2,
                "maxReplicas": 6,
                "keda": {
                    "prometheusAddress": "http://prometheus.invalid:9090",
                    "connectionsPerPod": 3000,
                },
            },
        },
        "consumer": {"autoscaling": {"enabled": True, "maxReplicas": 4}},
        "monitoring": {"podMonitor": {"enabled": True, "labels": {"release": "prometheus"}}},
    }
    sasl = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sasl", "namespace": namespace},
        "stringData": {"username": "svc", "password": "pw"},
    }
    support.apply(
        cluster, support.jwt_secret(namespace), sasl, support.fleetbroadcast(namespace, **spec)
    )
    body = support.eventually(
        "Ready", lambda: support.ready(cluster, namespace, "fleet"), logs=operator.tail
    )
    assert support.condition(body, "Reconciled")["reason"] == "Applied"

    gateway = support.get(cluster, namespace, "scaledobjects.keda.sh", "fleet-gateway")
    assert gateway["spec"]["maxReplicaCount"] == 6
    assert [t["type"] for t in gateway["spec"]["triggers"]] == ["prometheus", "cpu"]
    consumer = support.get(cluster, namespace, "scaledobjects.keda.sh", "fleet-consumer")
    (kafka,) = consumer["spec"]["triggers"]
    assert kafka["metadata"]["topic"] == "fleet.assets"
    assert kafka["metadata"]["allowIdleConsumers"] == "false"
    assert kafka["authenticationRef"] == {"name": "fleet-consumer"}
    assert (
        support.get(cluster, namespace, "triggerauthentications.keda.sh", "fleet-consumer")
        is not None
    )
    monitor = support.get(cluster, namespace, "podmonitors.monitoring.coreos.com", "fleet-pods")
    assert monitor["metadata"]["labels"]["release"] == "prometheus"
    assert support.get(cluster, namespace, "hpa", "fleet-gateway") is None
    for name in ("fleet-gateway", "fleet-consumer"):
        deployment = support.get(cluster, namespace, "deployment", name)
        assert deployment["spec"]["replicas"] >= 1  # the start count; KEDA's HPA owns it from there

    support.apply(cluster, support.fleetbroadcast(namespace, gateway={"drainSeconds": 5}))
    support.eventually(
        "back on the HPA, the KEDA and monitoring objects gone",
        lambda: (
            support.get(cluster, namespace, "hpa", "fleet-gateway") is not None
            and support.get(cluster, namespace, "scaledobjects.keda.sh", "fleet-gateway") is None
            and support.get(cluster, namespace, "scaledobjects.keda.sh", "fleet-consumer") is None
            and support.get(cluster, namespace, "podmonitors.monitoring.coreos.com", "fleet-pods")
            is None
        ),
        logs=operator.tail,
    )


def test_a_scaled_object_the_engine_would_refuse_is_refused_by_its_crd(
    operators: support.Operators, namespace: str, engine_crds: list[str]
) -> None:
    """The CRDs are real enough to refuse: a ScaledObject without triggers is invalid."""
    cluster = operators.cluster
    bad = {
        "apiVersion": "keda.sh/v1alpha1",
        "kind": "ScaledObject",
        "metadata": {"name": "bad", "namespace": namespace},
        "spec": {"scaleTargetRef": {"name": "x"}},
    }
    out = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(bad), check=False
    )
    assert out.returncode != 0
    assert "triggers" in out.stderr
