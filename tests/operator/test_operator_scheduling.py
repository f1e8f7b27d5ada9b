"""Where the pods run, on the real scheduler: spread per rollout, the spec's placement fields,
disruption budgets for both components, and a recreated Deployment that keeps its size."""

from __future__ import annotations

from typing import Any

import pytest

from fleetcast.devtools import cluster_access
from tests.operator import operator_support as support

pytestmark = pytest.mark.operator


def pods_of(
    cluster: cluster_access.ClusterAccess, namespace: str, component: str
) -> list[dict[str, Any]]:
    selector = f"app.kubernetes.io/component={component}"
    items: list[dict[str, Any]] = support.get(cluster, namespace, "pods", "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def test_after_a_rollout_the_gateways_still_sit_on_distinct_nodes(
    operators: support.Operators, namespace: str
) -> None:
    """Counted per pod-template-hash: the new pods spread even while the old ones stand."""
    cluster = operators.cluster
    operator = support.start_ready(operators)
    for image in ("fleetcast:0.2.0", "fleetcast:0.3.0"):
        support.apply(cluster, support.fleetbroadcast(namespace, image=image))
        support.eventually(
            f"Ready with {image}",
            lambda: support.ready(cluster, namespace, "fleet"),
            logs=operator.tail,
        )

        def settled() -> list[dict[str, Any]] | None:
            found = pods_of(cluster, namespace, "gateway")
            return found if len(found) == 2 else None

        gateways = support.eventually("two gateway pods", settled)
        nodes = {p["spec"]["nodeName"] for p in gateways}
        assert len(nodes) == 2, [(p["metadata"]["name"], p["spec"]["nodeName"]) for p in gateways]


def test_the_specs_scheduling_fields_reach_the_pods(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    placement: dict[str, Any] = {
        "nodeSelector": {"type": "kwok"},
        "tolerations": [
            {"key": "fleetcast.test/dedicated", "operator": "Exists", "effect": "NoSchedule"}
        ],
        "annotations": {"fleetcast.test/note": "placed"},
        "labels": {"fleetcast.test/team": "dispatch"},
    }
    operator = support.start_ready(
        operators,
        gateway={
            "replicas": 2,
            "autoscaling": {"enabled": False},
            "drainSeconds": 5,
            "pod": placement,
        },
    )
    for pod in pods_of(cluster, namespace, "gateway"):
        assert pod["spec"]["nodeSelector"] == {"type": "kwok"}
        assert placement["tolerations"][0] in pod["spec"]["tolerations"]
        assert pod["metadata"]["annotations"]["fleetcast.test/note"] == "placed"
        assert pod["metadata"]["labels"]["fleetcast.test/team"] == "dispatch"
    gateway = support.get(cluster, namespace, "deployment", "fleet-gateway")
    spec = gateway["spec"]
    assert spec["minReadySeconds"] == 10
    assert spec["strategy"]["rollingUpdate"] == {"maxSurge": 1, "maxUnavailable": 0}
    (container,) = spec["template"]["spec"]["containers"]
    assert container["lifecycle"]["preStop"] == {"sleep": {"seconds": 5}}
    assert operator.process.poll() is None


def test_both_components_have_a_disruption_budget(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    support.start_ready(operators)
    for component in ("gateway", "consumer"):
        budget = support.get(cluster, namespace, "pdb", f"fleet-{component}")
        assert budget["spec"]["maxUnavailable"] == 1
        assert budget["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == component


def test_a_deleted_autoscaled_gateway_deployment_comes_back_at_its_size(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    scaled = {
        "drainSeconds": 5,
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8},
    }
    operator = support.start_ready(operators, gateway=scaled)
    # The HPA (no metrics here) leaves the count alone; someone scaled it to 5.
    cluster.kubectl("scale", "deployment", "fleet-gateway", "--replicas=5", "-n", namespace)
    support.eventually(
        "the status sees 5 gateways",
        lambda: (
            support.get(cluster, namespace, support.FB, "fleet")["status"]["gateway"]["replicas"]
            == 5
        ),
        logs=operator.tail,
    )
    old = support.get(cluster, namespace, "deployment", "fleet-gateway")["metadata"]["uid"]
    cluster.kubectl("delete", "deployment", "fleet-gateway", "-n", namespace, "--wait=true")

    def back() -> dict[str, Any] | None:
        found = support.get(cluster, namespace, "deployment", "fleet-gateway")
        return found if found is not None and found["metadata"]["uid"] != old else None

    recreated = support.eventually("the gateway Deployment is back", back, logs=operator.tail)
    assert recreated["spec"]["replicas"] == 5
