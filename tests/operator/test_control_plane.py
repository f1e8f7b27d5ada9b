"""The test control plane behaves like a real cluster, not a bare API server.

Each test checks one piece the operator relies on: the scheduler plus kwok make
Deployments ready; the garbage collector follows ownerReferences (also from a
custom resource, as the operator's children have); the API server enforces a
CRD's structural schema and CEL rules; RBAC refuses a ServiceAccount.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from fleetcast.devtools import cluster_access

pytestmark = pytest.mark.operator

#: Longest wait for a controller to act (they act within a second or two here).
SETTLE_TIMEOUT = 60.0
CRD_GROUP = "controlplane.test.fleetcast.io"
CRD_NAME = f"gadgets.{CRD_GROUP}"
CEL_MESSAGE = "minReplicas must not be greater than maxReplicas"


def get_json(cluster: cluster_access.ClusterAccess, *args: str) -> Any:
    return json.loads(cluster.kubectl("get", *args, "-o", "json").stdout)


def apply(cluster: cluster_access.ClusterAccess, manifest: dict[str, Any]) -> None:
    cluster.kubectl("apply", "-f", "-", input=json.dumps(manifest))


def eventually(what: str, check: Callable[[], bool]) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"not within {SETTLE_TIMEOUT:.0f} s: {what}")
        time.sleep(0.25)


def deployment(name: str, replicas: int) -> dict[str, Any]:
    labels = {"app": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": labels},
                # Never pulled: kwok reports the container running without a kubelet.
                "spec": {"containers": [{"name": "app", "image": "example.invalid/app:1"}]},
            },
        },
    }


def test_deployment_pods_are_scheduled_to_fake_nodes_and_become_ready(
    cluster: cluster_access.ClusterAccess, namespace: str
) -> None:
    apply(cluster, {**deployment("web", 3), "metadata": {"name": "web", "namespace": namespace}})

    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, "--timeout=60s")

    status = get_json(cluster, "deployment", "web", "-n", namespace)["status"]
    assert status["readyReplicas"] == 3
    fake_nodes = {
        node["metadata"]["name"]
        for node in get_json(cluster, "nodes")["items"]
        if node["metadata"].get("annotations", {}).get("kwok.x-k8s.io/node") == "fake"
    }
    pods = get_json(cluster, "pods", "-n", namespace, "-l", "app=web")["items"]
    assert len(fake_nodes) >= 2
    assert {pod["spec"]["nodeName"] for pod in pods} <= fake_nodes
    assert all(pod["status"]["phase"] == "Running" for pod in pods)


def test_deleting_a_deployment_garbage_collects_its_replicasets_and_pods(
    cluster: cluster_access.ClusterAccess, namespace: str
) -> None:
    apply(
        cluster, {**deployment("doomed", 2), "metadata": {"name": "doomed", "namespace": namespace}}
    )
    cluster.kubectl("rollout", "status", "deployment/doomed", "-n", namespace, "--timeout=60s")

    cluster.kubectl("delete", "deployment", "doomed", "-n", namespace, "--cascade=background")

    def nothing_left() -> bool:
        left = get_json(cluster, "replicasets,pods", "-n", namespace, "-l", "app=doomed")
        return not left["items"]

    eventually("ReplicaSets and Pods of the deleted Deployment are collected", nothing_left)


@pytest.fixture(scope="module")
def gadget_crd(cluster: cluster_access.ClusterAccess) -> Iterator[str]:
    """A namespaced CRD with a structural schema and a CEL rule, like FleetBroadcast's."""
    spec_schema = {
        "type": "object",
        "required": ["minReplicas", "maxReplicas"],
        "properties": {
            "minReplicas": {"type": "integer", "minimum": 0},
            "maxReplicas": {"type": "integer", "minimum": 0},
        },
        "x-kubernetes-validations": [
            {"rule": "self.minReplicas <= self.maxReplicas", "message": CEL_MESSAGE}
        ],
    }
    apply(
        cluster,
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": CRD_NAME},
            "spec": {
                "group": CRD_GROUP,
                "scope": "Namespaced",
                "names": {"plural": "gadgets", "singular": "gadget", "kind": "Gadget"},
                "versions": [
                    {
                        "name": "v1",
                        "served": True,
                        "storage": True,
                        "schema": {
                            "openAPIV3Schema": {
                                "type": "object",
                                "properties": {"spec": spec_schema},
                            }
                        },
                    }
                ],
            },
        },
    )
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{CRD_NAME}", "--timeout=60s")
    yield CRD_NAME
    cluster.kubectl("delete", "crd", CRD_NAME, "--wait=false", check=False)


def gadget(namespace: str, name: str, low: int, high: int) -> dict[str, Any]:
    return {
        "apiVersion": f"{CRD_GROUP}/v1",
        "kind": "Gadget",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"minReplicas": low, "maxReplicas": high},
    }


def create(cluster: cluster_access.ClusterAccess, manifest: dict[str, Any]) -> str:
    """kubectl create; returns stderr. Retries while discovery has not seen a new CRD yet."""
    deadline = time.monotonic() + SETTLE_TIMEOUT
    while True:
        out = cluster.kubectl("create", "-f", "-", input=json.dumps(manifest), check=False)
        if "no matches for kind" not in out.stderr or time.monotonic() > deadline:
            return out.stderr if out.returncode else ""
        time.sleep(0.25)


def test_crd_cel_rule_rejects_an_invalid_object_with_the_schema_message(
    cluster: cluster_access.ClusterAccess, namespace: str, gadget_crd: str
) -> None:
    assert create(cluster, gadget(namespace, "fine", 1, 3)) == ""

    refused = create(cluster, gadget(namespace, "inverted", 5, 2))
    below_minimum = create(cluster, gadget(namespace, "negative", -1, 2))

    assert "Invalid value" in refused
    assert CEL_MESSAGE in refused
    assert "should be greater than or equal to 0" in below_minimum


def test_deleting_a_custom_resource_garbage_collects_what_it_owns(
    cluster: cluster_access.ClusterAccess, namespace: str, gadget_crd: str
) -> None:
    assert create(cluster, gadget(namespace, "owner", 1, 1)) == ""
    owner = get_json(cluster, f"gadgets.{CRD_GROUP}", "owner", "-n", namespace)
    reference = {
        "apiVersion": f"{CRD_GROUP}/v1",
        "kind": "Gadget",
        "name": "owner",
        "uid": owner["metadata"]["uid"],
        "controller": True,
    }
    child = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "child", "namespace": namespace, "ownerReferences": [reference]},
        "data": {"k": "v"},
    }
    apply(cluster, child)

    cluster.kubectl("delete", f"gadgets.{CRD_GROUP}", "owner", "-n", namespace)

    def child_gone() -> bool:
        out = cluster.kubectl("get", "configmap", "child", "-n", namespace, check=False)
        return out.returncode != 0 and "NotFound" in out.stderr

    eventually("the ConfigMap owned by the deleted Gadget is collected", child_gone)


def test_service_account_without_rights_is_forbidden_and_a_role_grants_exactly_its_rules(
    cluster: cluster_access.ClusterAccess, namespace: str
) -> None:
    kubeconfig = cluster.sa_kubeconfig(namespace, "reader")

    def as_reader(resource: str) -> subprocess.CompletedProcess[str]:
        return cluster.kubectl("get", resource, "-n", namespace, kubeconfig=kubeconfig, check=False)

    refused = as_reader("pods")
    assert refused.returncode != 0
    # kubectl prints "(Forbidden)" for exactly an HTTP 403 with reason Forbidden.
    assert "Error from server (Forbidden)" in refused.stderr
    assert f"system:serviceaccount:{namespace}:reader" in refused.stderr

    cluster.kubectl(
        "create", "role", "pod-reader", "--verb=list", "--resource=pods", "-n", namespace
    )
    cluster.kubectl(
        "create", "rolebinding", "reader", "--role=pod-reader",
        f"--serviceaccount={namespace}:reader", "-n", namespace,
    )  # fmt: skip
    eventually("the RoleBinding takes effect", lambda: as_reader("pods").returncode == 0)
    assert "Error from server (Forbidden)" in as_reader("secrets").stderr
