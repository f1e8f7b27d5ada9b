"""What the API server itself enforces with the CRD: schema, CEL rules, defaults; and the RBAC.

No operator runs here: a bad spec must be refused at `kubectl apply`, with a
message that says what to fix, before any reconcile sees it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest

from fleetcast.devtools import cluster_access
from fleetcast.operator import spec as crd
from tests.operator import operator_support as support
from tests.operator.conftest import CLUSTER_ROLE

pytestmark = pytest.mark.operator


@pytest.fixture(scope="module")
def space(operator_cluster: cluster_access.ClusterAccess) -> Iterator[str]:
    """One namespace for these tests: nothing here runs a pod or needs a ServiceAccount."""
    name = f"t-operator-validation-{secrets.token_hex(3)}"
    operator_cluster.kubectl("create", "namespace", name)
    yield name
    operator_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def refusal(cluster: cluster_access.ClusterAccess, body: dict[str, Any]) -> str:
    out = cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False
    )
    assert out.returncode != 0, f"accepted: {json.dumps(body['spec'])}"
    return out.stderr


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"gateway": {"autoscaling": {"minReplicas": 5, "maxReplicas": 2}}},
            "gateway.autoscaling.minReplicas must not be greater than maxReplicas",
        ),
        (
            {"redis": {"url": "redis://r:6379/0", "secretRef": {"name": "redis"}}},
            "redis needs exactly one of url and secretRef",
        ),
        ({"redis": {}}, "redis needs exactly one of url and secretRef"),
        ({"auth": {"algorithms": ["HS256"]}}, "auth.jwtSecretRef is required"),
        (
            {"auth": {"algorithms": ["RS256"], "jwtSecretRef": {"name": "jwt"}}},
            "auth.publicKeySecretRef is required",
        ),
        (
            {"kafka": {"bootstrapServers": "k:9092", "security": {"protocol": "SASL_SSL"}}},
            "kafka.security.secretRef",
        ),
        (
            {"routing": {"overrides": {"no_such_event": ["org"]}}},
            "routing.overrides keys must be event types of the catalog",
        ),
        ({"routing": {"overrides": {"task_updated": ["galaxy"]}}}, "supported values"),
        ({"gateway": {"replicas": -1}}, "should be greater than or equal to 0"),
        ({"gateway": {"service": {"type": "ExternalName"}}}, "supported values"),
        ({"kafka": {"bootstrapServers": "k:9092", "topics": ["bad topic"]}}, "should match"),
        ({"gateway": {"resources": {"requests": {"cpu": "lots"}}}}, "should match"),
        ({"gateway": {"replicaCount": 2}}, "unknown field"),
        (
            {"gateway": {"console": {"map": {"tileUrl": "https://tiles.example/{z}/{x}.png"}}}},
            "console.map.tileUrl must contain {z}, {x} and {y}",
        ),
        (
            {"gateway": {"console": {"map": {"tileUrl": "https://t.example/{z}/{x}/{y} *"}}}},
            "should match",
        ),
    ],
    ids=lambda value: value if isinstance(value, str) else json.dumps(value)[:40],
)
def test_invalid_specs_are_refused_with_a_useful_message(
    operator_cluster: cluster_access.ClusterAccess,
    namespace: str,
    change: dict[str, Any],
    message: str,
) -> None:
    body = support.fleetbroadcast(namespace)
    body["spec"].update(change)
    assert message in refusal(operator_cluster, body)


def test_an_agencys_own_tile_server_is_accepted(
    operator_cluster: cluster_access.ClusterAccess, namespace: str
) -> None:
    body = support.fleetbroadcast(namespace)
    tiles = {"tileUrl": "https://{s}.tiles.agency.example/{z}/{x}/{y}.png", "maxZoom": 18}
    body["spec"]["gateway"]["console"] = {"map": tiles}
    out = operator_cluster.kubectl(
        "apply", "--dry-run=server", "-f", "-", input=json.dumps(body), check=False
    )
    assert out.returncode == 0, out.stderr


def test_names_too_long_for_the_owned_objects_are_refused(
    operator_cluster: cluster_access.ClusterAccess, space: str
) -> None:
    body = support.fleetbroadcast(space, name="a" * 48)
    assert "at most 47 characters" in refusal(operator_cluster, body)


def test_the_api_server_defaults_exactly_what_the_operator_model_assumes(
    operator_cluster: cluster_access.ClusterAccess, namespace: str
) -> None:
    minimal = {
        "apiVersion": "radiofleet.io/v1alpha1",
        "kind": "FleetBroadcast",
        "metadata": {"name": "minimal", "namespace": namespace},
        "spec": {
            "kafka": {"bootstrapServers": "k:9092"},
            "redis": {"url": "redis://r:6379/0"},
            "auth": {"jwtSecretRef": {"name": "jwt"}},
        },
    }
    support.apply(operator_cluster, minimal)
    stored = support.get(operator_cluster, namespace, support.FB, "minimal")["spec"]
    assert stored == crd.parse(minimal["spec"]).model_dump(
        mode="json", by_alias=True, exclude_none=True
    )


#: (verb, resource, allowed?) for the operator's ServiceAccount.
PERMISSIONS = [
    ("patch", "deployments.apps", "yes"),
    ("patch", f"{support.FB}/status", "yes"),
    ("get", "secrets", "yes"),
    ("list", "secrets", "no"),
    ("watch", "secrets", "no"),
    ("delete", "deployments.apps", "yes"),
    ("delete", "services", "no"),
    ("delete", "serviceaccounts", "no"),
    ("list", "pods", "yes"),
    ("create", "pods", "no"),
    ("delete", "pods", "no"),
    ("update", "deployments.apps", "no"),
    ("update", "clusterroles.rbac.authorization.k8s.io", "no"),
    ("create", "rolebindings.rbac.authorization.k8s.io", "no"),
]


def test_the_operator_role_is_least_privilege(
    operator_cluster: cluster_access.ClusterAccess, space: str
) -> None:
    account = f"system:serviceaccount:{space}:probe"
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": "probe", "namespace": space},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": CLUSTER_ROLE,
        },
        "subjects": [{"kind": "ServiceAccount", "name": "probe", "namespace": space}],
    }
    support.apply(operator_cluster, binding)
    answers = [
        (
            verb,
            resource,
            operator_cluster.kubectl(
                "auth", "can-i", verb, resource, "-n", space, f"--as={account}", check=False
            ).stdout.strip(),
        )
        for verb, resource, _ in PERMISSIONS
    ]
    assert answers == PERMISSIONS
