"""Fixtures of the FleetBroadcast operator tests (tests/operator/test_operator_*.py).

``operator_cluster``: the session cluster with the CRDs and the operator's
ClusterRole, all from the chart's files (the one copy of each). ``operators``:
a factory of operator processes that run under a ServiceAccount bound to that
ClusterRole, in the test's own namespace, stopped after the test; their logs
must show no permission error, so a rule missing from the file fails here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
import yaml

from fleetcast.devtools import cluster_access
from tests.operator import operator_support as support

CLUSTER_ROLE = "fleetcast-operator-test"
SERVICE_ACCOUNT = "fleetcast-operator"
CRD_FILES = ("crd-fleetbroadcasts.yaml", "crd-kopfpeerings.yaml", "crd-clusterkopfpeerings.yaml")


@pytest.fixture(scope="session")
def operator_cluster(cluster: cluster_access.ClusterAccess) -> cluster_access.ClusterAccess:
    """The cluster with the FleetBroadcast and kopf peering CRDs and the operator's ClusterRole."""
    for name in CRD_FILES:
        path = support.CHART_FILES / name
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
    cluster.kubectl(
        "wait",
        "--for=condition=Established",
        f"crd/{support.FB}",
        "crd/kopfpeerings.kopf.dev",
        "--timeout=60s",
    )
    rules = yaml.safe_load((support.CHART_FILES / "operator-rbac-rules.yaml").read_text())
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": CLUSTER_ROLE},
        "rules": rules,
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(role))
    return cluster


@pytest.fixture
def operators(
    operator_cluster: cluster_access.ClusterAccess,
    namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[support.Operators]:
    """Operator processes for ``namespace``, as a ServiceAccount with the operator's rules only."""
    kubeconfig = operator_cluster.sa_kubeconfig(namespace, SERVICE_ACCOUNT)
    binding_name = f"{CLUSTER_ROLE}-{namespace}"
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": binding_name},
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": CLUSTER_ROLE,
        },
        "subjects": [{"kind": "ServiceAccount", "name": SERVICE_ACCOUNT, "namespace": namespace}],
    }
    operator_cluster.kubectl("apply", "-f", "-", input=json.dumps(binding))
    runner = support.Operators(
        operator_cluster, namespace, kubeconfig, tmp_path_factory.mktemp("operator")
    )
    try:
        yield runner
    finally:
        runner.stop_all()
        operator_cluster.kubectl(
            "delete", "clusterrolebinding", binding_name, "--wait=false", check=False
        )
    refused = [m for op in runner.started for m in op.messages() if is_rbac_denial(m)]
    assert not refused, f"the operator's RBAC rules lack a permission: {refused[:3]}"


def is_rbac_denial(message: str) -> bool:
    """A 403 that names a missing permission.

    A cluster-wide operator may still write an Event into a namespace another
    test is deleting; the API server answers that with a 403 too ("being
    terminated"), which says nothing about the operator's rules.
    """
    forbidden = "Forbidden" in message or "forbidden" in message
    return forbidden and "because it is being terminated" not in message
