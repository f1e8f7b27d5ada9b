"""The operator owns what it created, only that, and takes all of it back from hand edits.

Edits a server-side apply cannot merge (a list entry whose key changed: a
Service port, a containerPort, or the same through ``kubectl replace``) and
fields someone added by hand (hostNetwork, an extra env variable) are
repaired; an object of the same name that the operator did not create is
never adopted, and is reported as a Conflict; one object that cannot be
applied does not keep the others from being applied.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetcast.devtools import cluster_access
from tests.operator import operator_support as support

pytestmark = pytest.mark.operator


def patch(
    cluster: cluster_access.ClusterAccess, namespace: str, what: str, ops: list[dict[str, Any]]
) -> None:
    cluster.kubectl("patch", *what.split(), "-n", namespace, "--type=json", "-p", json.dumps(ops))


def gateway_container(cluster: cluster_access.ClusterAccess, namespace: str) -> dict[str, Any]:
    found = support.get(cluster, namespace, "deployment", "fleet-gateway")
    container: dict[str, Any] = found["spec"]["template"]["spec"]["containers"][0]
    return container


def test_an_unmergeable_service_port_edit_is_repaired_and_blocks_nothing_else(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = support.start_ready(operators)
    patch(cluster, namespace, "service fleet-gateway", [support.replace("/spec/ports/0/port", 81)])
    cluster.kubectl(
        "set", "image", "deployment/fleet-gateway", "gateway=evil:latest", "-n", namespace
    )
    support.apply(cluster, support.fleetbroadcast(namespace, consumer={"replicas": 3}))

    def repaired() -> bool:
        ports = support.get(cluster, namespace, "service", "fleet-gateway")["spec"]["ports"]
        consumer = support.get(cluster, namespace, "deployment", "fleet-consumer")
        return (
            [p["port"] for p in ports] == [80]
            and gateway_container(cluster, namespace)["image"] != "evil:latest"
            and consumer["spec"]["replicas"] == 3
        )

    support.eventually("port, image and consumer replicas repaired", repaired, logs=operator.tail)
    support.eventually(
        "Ready", lambda: support.ready(cluster, namespace, "fleet"), logs=operator.tail
    )
    messages = [e["message"] for e in support.events(cluster, namespace, "DriftRepaired")]
    assert any("Service fleet-gateway" in m and "took back" in m for m in messages), messages


def test_kubectl_replace_with_a_changed_container_port_is_repaired(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = support.start_ready(operators)
    live = support.get(cluster, namespace, "deployment", "fleet-gateway")
    for key in ("status", "managedFields"):
        live.pop(key, None)
        live["metadata"].pop(key, None)
    live["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 9090
    cluster.kubectl("replace", "-f", "-", input=json.dumps(live))

    def repaired() -> bool:
        ports = gateway_container(cluster, namespace)["ports"]
        return [p["containerPort"] for p in ports] == [8080]

    support.eventually("the containerPort is 8080 again", repaired, logs=operator.tail)
    support.eventually(
        "Ready", lambda: support.ready(cluster, namespace, "fleet"), logs=operator.tail
    )


def test_hand_added_fields_do_not_survive_drift_repair(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = support.start_ready(operators)
    patch(
        cluster,
        namespace,
        "deployment fleet-gateway",
        [
            {"op": "add", "path": "/spec/template/spec/hostNetwork", "value": True},
            {
                "op": "add",
                "path": "/spec/template/spec/containers/0/env/-",
                "value": {"name": "EXTRA", "value": "injected"},
            },
        ],
    )

    def clean() -> bool:
        found = support.get(cluster, namespace, "deployment", "fleet-gateway")
        pod = found["spec"]["template"]["spec"]
        names = [e["name"] for e in pod["containers"][0].get("env", [])]
        return not pod.get("hostNetwork") and "EXTRA" not in names

    support.eventually("hostNetwork and EXTRA are gone", clean, logs=operator.tail)


def test_an_existing_configmap_is_never_adopted(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = operators.start()
    theirs = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "fleet-gateway-config", "namespace": namespace},
        "data": {"owner": "someone else"},
    }
    support.apply(cluster, theirs, support.jwt_secret(namespace), support.fleetbroadcast(namespace))

    def conflict() -> dict[str, Any] | None:
        found = support.condition(support.get(cluster, namespace, support.FB, "fleet"), "Ready")
        return found if found.get("reason") == "Conflict" else None

    ready = support.eventually("Ready=False Conflict", conflict, logs=operator.tail)
    assert "ConfigMap fleet-gateway-config" in ready["message"]
    # Everything else is applied anyway.
    support.eventually(
        "the gateway Deployment exists",
        lambda: support.get(cluster, namespace, "deployment", "fleet-gateway"),
        logs=operator.tail,
    )
    config = support.get(cluster, namespace, "configmap", "fleet-gateway-config")
    assert not config["metadata"].get("ownerReferences")
    assert config["data"] == {"owner": "someone else"}

    cluster.kubectl("delete", support.FB, "fleet", "-n", namespace, "--wait=true")
    support.eventually(
        "the owned ConfigMap is collected, theirs is not",
        lambda: support.get(cluster, namespace, "configmap", "fleet-consumer-config") is None,
    )
    assert support.get(cluster, namespace, "configmap", "fleet-gateway-config") is not None


def test_a_foreign_deployment_of_the_gateways_name_is_not_reported_as_the_gateway(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = operators.start()
    cluster.kubectl("create", "deployment", "fleet-gateway", "--image=nginx", "-n", namespace)
    support.apply(cluster, support.jwt_secret(namespace), support.fleetbroadcast(namespace))

    def reported() -> dict[str, Any] | None:
        body = support.get(cluster, namespace, support.FB, "fleet")
        found = support.condition(body, "GatewayAvailable")
        return body if found.get("reason") == "Conflict" else None

    body = support.eventually("GatewayAvailable Conflict", reported, logs=operator.tail)
    gateway = support.condition(body, "GatewayAvailable")
    assert gateway["status"] == "False"
    assert "Deployment fleet-gateway" in gateway["message"]
    assert support.condition(body, "Ready")["status"] == "False"
    nginx = support.get(cluster, namespace, "deployment", "fleet-gateway")
    assert nginx["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx"
    assert not nginx["metadata"].get("ownerReferences")
    assert support.get(cluster, namespace, "deployment", "fleet-consumer") is not None
