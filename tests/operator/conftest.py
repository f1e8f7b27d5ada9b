"""Fixtures of the FleetBroadcast operator tests (tests/operator/test_operator_*.py).

``operator_cluster``: the session cluster with the FleetBroadcast CRD and the
operator's two ClusterRoles, all from the chart's files (the one copy of
each): the reconcile rules and the Lease rules. ``operators``: a factory of
operator processes that run under a ServiceAccount of the test's namespace,
bound as the chart binds it in namespaced mode (RoleBindings in that
namespace only; a ClusterRoleBinding for a cluster-wide operator), stopped
after the test; their logs must show no permission error, so a rule missing
from the files fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from fleetcast.devtools import cluster_access
from tests.operator import operator_support as support

CLUSTER_ROLE = "fleetcast-operator-test"
LEADER_ROLE = "fleetcast-operator-test-leader"
SERVICE_ACCOUNT = "fleetcast-operator"
CRD_FILES = ("crd-fleetbroadcasts.yaml",)


def cluster_role(name: str, rules_file: str) -> dict[str, Any]:
    rules = yaml.safe_load((support.CHART_FILES / rules_file).read_text())
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules,
    }


def binding(kind: str, name: str, role: str, namespace: str) -> dict[str, Any]:
    """A RoleBinding (in ``namespace``) or ClusterRoleBinding of the operator's account."""
    meta: dict[str, Any] = {"name": name}
    if kind == "RoleBinding":
        meta["namespace"] = namespace
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": kind,
        "metadata": meta,
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}],
    }


@pytest.fixture(scope="session")
def operator_cluster(cluster: cluster_access.ClusterAccess) -> cluster_access.ClusterAccess:
    """The cluster with the FleetBroadcast CRD and the operator's ClusterRoles."""
    for name in CRD_FILES:
        path = support.CHART_FILES / name
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    cluster.kubectl("wait", "--for=condition=Established", f"crd/{support.FB}", "--timeout=60s")
    roles = [
        cluster_role(CLUSTER_ROLE, "operator-rbac-rules.yaml"),
        cluster_role(LEADER_ROLE, "operator-leader-rules.yaml"),
    ]
    support.apply(cluster, *roles)
    return cluster


@pytest.fixture
def operators(
    operator_cluster: cluster_access.ClusterAccess,
    namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[support.Operators]:
    """Operator processes for ``namespace``, as a ServiceAccount with the operator's rules only."""
    kubeconfig = operator_cluster.sa_kubeconfig(namespace, SERVICE_ACCOUNT)
    support.apply(
        operator_cluster,
        binding("RoleBinding", "fleetcast-operator", CLUSTER_ROLE, namespace),
        binding("RoleBinding", "fleetcast-operator-leader", LEADER_ROLE, namespace),
    )
    cluster_binding = binding(
        "ClusterRoleBinding", f"{CLUSTER_ROLE}-{namespace}", CLUSTER_ROLE, namespace
    )
    runner = support.Operators(
        operator_cluster,
        namespace,
        kubeconfig,
        tmp_path_factory.mktemp("operator"),
        cluster_binding=json.dumps(cluster_binding),
    )
    try:
        yield runner
    finally:
        runner.stop_all()
        if runner.bound_clusterwide:
            operator_cluster.kubectl(
                "delete", "clusterrolebinding", cluster_binding["metadata"]["name"],
                "--wait=false", check=False,
            )  # fmt: skip
    refused = [m for op in runner.started for m in op.messages() if is_rbac_denial(m)]
    assert not refused, f"the operator's RBAC rules lack a permission: {refused[:3]}"


def is_rbac_denial(message: str) -> bool:
    """A 403 that names a missing permission ('... is forbidden: User "..." cannot ...').

    Other refusals say Forbidden too and say nothing about the operator's
    rules: an Event written into a namespace another test is deleting ("being
    terminated"), a field the API server will not change ("immutable:
    Forbidden"), an admission policy's denial.
    """
    return "forbidden: User" in message and " cannot " in message
