"""Consumer placement ``sidecar``: a consumer container in every gateway pod, one group."""

from __future__ import annotations

from typing import Any

import pytest

from fleetcast.devtools import cluster_access
from tests.operator import operator_support as support

pytestmark = pytest.mark.operator


def gateway_pods(cluster: cluster_access.ClusterAccess, namespace: str) -> list[dict[str, Any]]:
    selector = "app.kubernetes.io/component=gateway"
    items: list[dict[str, Any]] = support.get(cluster, namespace, "pods", "-l", selector)["items"]
    return [p for p in items if not p["metadata"].get("deletionTimestamp")]


def test_switching_to_sidecars_moves_the_consumer_into_the_gateway_pods(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = support.start_ready(operators)
    assert support.get(cluster, namespace, "deployment", "fleet-consumer") is not None

    support.apply(cluster, support.fleetbroadcast(namespace, consumer={"placement": "sidecar"}))
    body = support.eventually(
        "Ready with sidecars",
        lambda: support.ready(cluster, namespace, "fleet"),
        logs=operator.tail,
    )
    support.eventually(
        "the consumer Deployment and its budget are gone",
        lambda: (
            support.get(cluster, namespace, "deployment", "fleet-consumer") is None
            and support.get(cluster, namespace, "pdb", "fleet-consumer") is None
        ),
        logs=operator.tail,
    )

    def all_sidecars() -> list[dict[str, Any]] | None:
        pods = gateway_pods(cluster, namespace)
        names = [[c["name"] for c in p["spec"]["containers"]] for p in pods]
        return pods if len(pods) == 2 and all(n == ["gateway", "consumer"] for n in names) else None

    pods = support.eventually("two gateway pods with a consumer each", all_sidecars)
    groups = set()
    config = support.get(cluster, namespace, "configmap", "fleet-consumer-config")["data"]
    for pod in pods:
        (consumer,) = [c for c in pod["spec"]["containers"] if c["name"] == "consumer"]
        assert consumer["envFrom"] == [{"configMapRef": {"name": "fleet-consumer-config"}}]
        assert "readinessProbe" not in consumer
        groups.add(config["FLEETCAST_KAFKA_GROUP_ID"])
    assert len(groups) == 1
    available = support.condition(body, "ConsumerAvailable")
    assert (available["status"], available["reason"]) == ("True", "Available")
    assert "consumer sidecar" in available["message"]
    assert body["status"]["consumer"]["placement"] == "sidecar"
