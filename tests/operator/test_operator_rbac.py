"""Least privilege, proven on the real API server.

- every verb the rules grant is used: a scenario that walks every code path
  that needs one, then the API server's audit log of the operator's requests;
- with watchNamespaces the chart grants Roles in those namespaces only, and
  the operator reconciles with nothing cluster-wide;
- cluster-wide, the chart's admission policy keeps the operator's account from
  writing anything a FleetBroadcast does not own, in kube-system, or a
  Deployment whose pods could escape (host network, another ServiceAccount);
- the pods meet Pod Security ``restricted``, the level the shipped namespace
  enforces.
"""

from __future__ import annotations

import functools
import json
import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetcast.devtools import cluster_access
from fleetcast.devtools import cluster_flags as flags
from tests.operator import operator_support as support
from tests.operator.conftest import SERVICE_ACCOUNT

pytestmark = pytest.mark.operator

#: Granted but never a request of their own: an authorization check the
#: OwnerReferencesPermissionEnforcement admission plugin makes (off here, on in
#: OpenShift and some hardened clusters) when an ownerReference sets
#: blockOwnerDeletion.
CHECKED_NOT_REQUESTED = {("radiofleet.io", "fleetbroadcasts/finalizers", "update")}


def granted() -> set[tuple[str, str, str]]:
    """(group, resource, verb) for every rule of the operator's two rule files."""
    found = set()
    for name in ("operator-rbac-rules.yaml", "operator-leader-rules.yaml"):
        for rule in yaml.safe_load((support.CHART_FILES / name).read_text()):
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    found |= {(group, resource, verb) for verb in rule["verbs"]}
    return found


def audit_log(cluster: cluster_access.ClusterAccess) -> Path:
    path = cluster.kubeconfig.parent / flags.AUDIT_LOG
    if not path.exists():
        pytest.fail(f"the test control plane writes no audit log at {path}", pytrace=False)
    return path


def used(cluster: cluster_access.ClusterAccess, user: str) -> set[tuple[str, str, str]]:
    """(group, resource, verb) of every request ``user`` made; an apply that created is a create."""
    found = set()
    for line in audit_log(cluster).read_text().splitlines():
        event = json.loads(line)
        if event.get("user", {}).get("username") != user or "objectRef" not in event:
            continue
        ref = event["objectRef"]
        resource = ref["resource"] + (f"/{ref['subresource']}" if ref.get("subresource") else "")
        group = ref.get("apiGroup", "")
        found.add((group, resource, event["verb"]))
        if event["verb"] == "patch" and event.get("responseStatus", {}).get("code") == 201:
            found.add((group, resource, "create"))
    return found


def sasl_secret(namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "sasl", "namespace": namespace},
        "stringData": {"username": "svc", "password": "pw"},
    }


def absent(cluster: cluster_access.ClusterAccess, namespace: str, kind: str, name: str) -> bool:
    return support.get(cluster, namespace, kind, name) is None


def reconciled_at(cluster: cluster_access.ClusterAccess, namespace: str, generation: int) -> bool:
    body = support.get(cluster, namespace, support.FB, "fleet")
    found = support.condition(body, "Reconciled")
    return found.get("status") == "True" and found.get("observedGeneration") == generation


def test_every_granted_verb_is_used(
    operators: support.Operators, namespace: str, engine_crds: list[str]
) -> None:
    cluster = operators.cluster
    operator = operators.start()
    everything: dict[str, Any] = {
        "kafka": {
            "bootstrapServers": "kafka.invalid:9092",
            "security": {"protocol": "SASL_SSL", "secretRef": {"name": "sasl"}},
        },
        "gateway": {
            "drainSeconds": 5,
            "autoscaling": {
                "engine": "keda",
                "keda": {"prometheusAddress": "http://prom.invalid:9090"},
            },
        },
        "consumer": {"autoscaling": {"enabled": True}},
        "monitoring": {"podMonitor": {"enabled": True}},
    }
    support.apply(
        cluster,
        support.jwt_secret(namespace),
        sasl_secret(namespace),
        support.fleetbroadcast(namespace, **everything),
    )
    support.eventually(
        "generation 1 applied", lambda: reconciled_at(cluster, namespace, 1), logs=operator.tail
    )
    for kind, name in (
        ("scaledobjects", "fleet-gateway"),
        ("triggerauthentications", "fleet-consumer"),
        ("podmonitors", "fleet-pods"),
    ):
        assert support.get(cluster, namespace, kind, name) is not None, (kind, name)

    # A ConfigMap made immutable by hand cannot be updated: it is recreated.
    before = support.get(cluster, namespace, "configmap", "fleet-consumer-config")["metadata"][
        "uid"
    ]
    cluster.kubectl(
        "patch", "configmap", "fleet-consumer-config", "-n", namespace, "-p", '{"immutable": true}'
    )

    def recreated() -> bool:
        found = support.get(cluster, namespace, "configmap", "fleet-consumer-config")
        return (
            found is not None and found["metadata"]["uid"] != before and not found.get("immutable")
        )

    support.eventually("the immutable ConfigMap is recreated", recreated, logs=operator.tail)

    sidecar: dict[str, Any] = {
        "kafka": everything["kafka"],
        "gateway": {"drainSeconds": 5},
        "consumer": {"placement": "sidecar"},
    }
    support.apply(cluster, support.fleetbroadcast(namespace, **sidecar))
    support.eventually(
        "generation 2 applied", lambda: reconciled_at(cluster, namespace, 2), logs=operator.tail
    )
    fixed: dict[str, Any] = {
        **sidecar,
        "gateway": {"replicas": 2, "autoscaling": {"enabled": False}, "drainSeconds": 5},
    }
    support.apply(cluster, support.fleetbroadcast(namespace, **fixed))
    support.eventually(
        "Ready at generation 3",
        lambda: support.ready(cluster, namespace, "fleet"),
        logs=operator.tail,
    )
    for kind, name in (
        ("deployment", "fleet-consumer"),
        ("poddisruptionbudget", "fleet-consumer"),
        ("scaledobjects", "fleet-gateway"),
        ("scaledobjects", "fleet-consumer"),
        ("triggerauthentications", "fleet-consumer"),
        ("podmonitors", "fleet-pods"),
        ("hpa", "fleet-gateway"),
    ):
        gone = functools.partial(absent, cluster, namespace, kind, name)
        support.eventually(f"{kind}/{name} is gone", gone)
    operator.stop()  # releases the Lease

    user = f"system:serviceaccount:{namespace}:{SERVICE_ACCOUNT}"
    deadline = time.monotonic() + support.PROCESS_WAIT  # the audit log is written asynchronously
    unused = granted() - CHECKED_NOT_REQUESTED
    while time.monotonic() < deadline:
        unused = granted() - CHECKED_NOT_REQUESTED - used(cluster, user)
        if not unused:
            break
        time.sleep(1)
    assert not unused, f"granted but never used: {sorted(unused)}"


@pytest.fixture
def other_namespace(operator_cluster: cluster_access.ClusterAccess) -> Iterator[str]:
    name = f"t-operator-release-{secrets.token_hex(3)}"
    operator_cluster.kubectl("create", "namespace", name)
    yield name
    operator_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


RBAC_TEMPLATES = ("operator-serviceaccount.yaml", "operator-rbac.yaml")


def chart_objects(
    cluster: cluster_access.ClusterAccess,
    release: str,
    namespace: str,
    *values: str,
    templates: tuple[str, ...] = RBAC_TEMPLATES,
) -> list[dict[str, Any]]:
    """The chart's ServiceAccount and RBAC (and what ``templates`` adds), for ``namespace``."""
    shown = [arg for name in templates for arg in ("--show-only", f"templates/{name}")]
    done = cluster.helm(
        "template", release, str(support.REPO / "charts/fleetcast"), "--namespace", namespace,
        *shown, *values,
    )  # fmt: skip
    return [d for d in yaml.safe_load_all(done.stdout) if d]


def can(cluster: cluster_access.ClusterAccess, user: str, *args: str) -> bool:
    out = cluster.kubectl("auth", "can-i", *args, f"--as={user}", check=False)
    return out.stdout.strip() == "yes"


def test_a_namespaced_operator_gets_roles_there_and_nothing_cluster_wide(
    operator_cluster: cluster_access.ClusterAccess,
    namespace: str,
    other_namespace: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    cluster = operator_cluster
    release = f"ns-{secrets.token_hex(2)}"
    rendered = chart_objects(
        cluster, release, other_namespace, "--set", f"operator.watchNamespaces={{{namespace}}}"
    )
    assert not [o for o in rendered if o["kind"].startswith("Cluster") or "Admission" in o["kind"]]
    support.apply(cluster, *rendered)
    account = next(o["metadata"]["name"] for o in rendered if o["kind"] == "ServiceAccount")
    user = f"system:serviceaccount:{other_namespace}:{account}"

    assert can(cluster, user, "patch", "deployments.apps", "-n", namespace)
    assert can(cluster, user, "patch", "leases.coordination.k8s.io", "-n", other_namespace)
    for args in (
        ("patch", "deployments.apps", "-n", other_namespace),
        ("get", "secrets", "-n", "kube-system"),
        ("create", "deployments.apps", "-n", "kube-system"),
        ("list", "namespaces"),
        ("list", "customresourcedefinitions.apiextensions.k8s.io"),
        ("patch", "leases.coordination.k8s.io", "-n", namespace),
        ("create", "pods", "-n", namespace),
    ):
        assert not can(cluster, user, *args), args

    runner = support.Operators(
        cluster,
        namespace,
        cluster.sa_kubeconfig(other_namespace, account),
        tmp_path_factory.mktemp("namespaced"),
    )
    runner.lease_namespace = other_namespace
    try:
        operator = runner.start()
        support.apply(cluster, support.jwt_secret(namespace), support.fleetbroadcast(namespace))
        support.eventually(
            "Ready", lambda: support.ready(cluster, namespace, "fleet"), logs=operator.tail
        )
        assert not [m for m in operator.messages() if "orbidden" in m], operator.tail()
    finally:
        runner.stop_all()


def test_cluster_wide_the_admission_policy_keeps_the_operator_to_its_own_objects(
    operator_cluster: cluster_access.ClusterAccess, namespace: str
) -> None:
    cluster = operator_cluster
    release = f"cw-{secrets.token_hex(2)}"
    everything = (*RBAC_TEMPLATES, "operator-admissionpolicy.yaml")
    rendered = chart_objects(cluster, release, namespace, templates=everything)
    cluster_scoped = [o for o in rendered if "namespace" not in o["metadata"]]
    try:
        support.apply(cluster, *rendered)
        account = next(o["metadata"]["name"] for o in rendered if o["kind"] == "ServiceAccount")
        user = f"system:serviceaccount:{namespace}:{account}"
        assert can(cluster, user, "create", "deployments.apps", "-n", "kube-system")  # RBAC alone
        owner = support.fleetbroadcast(namespace)
        support.apply(cluster, support.jwt_secret(namespace), owner)
        uid = support.get(cluster, namespace, support.FB, "fleet")["metadata"]["uid"]

        def create(space: str, *, owned: bool = True, **pod: Any) -> str:
            manifest = deployment_for(space, uid if owned else "", **pod)
            out = cluster.kubectl(
                "create",
                "--dry-run=server",
                "-f",
                "-",
                f"--as={user}",
                input=json.dumps(manifest),
                check=False,
            )
            return out.stderr

        support.eventually(
            "the policy is in force", lambda: "may not write to namespace" in create("kube-system")
        )
        assert create(namespace) == ""
        assert "FleetBroadcast controls" in create(namespace, owned=False)
        assert "own ServiceAccount" in create(namespace, hostNetwork=True)
        assert "own ServiceAccount" in create(namespace, serviceAccountName="default")
    finally:
        for found in cluster_scoped:
            cluster.kubectl(
                "delete",
                found["kind"].lower(),
                found["metadata"]["name"],
                "--wait=false",
                check=False,
            )


def deployment_for(namespace: str, uid: str, **pod: Any) -> dict[str, Any]:
    """A Deployment as the operator renders one (owned, labelled), with pod spec changes."""
    labels = {
        "app.kubernetes.io/name": "probe",
        "app.kubernetes.io/managed-by": "fleetcast-operator",
    }
    meta: dict[str, Any] = {"name": "fleet-probe", "namespace": namespace, "labels": labels}
    if uid:
        meta["ownerReferences"] = [
            {
                "apiVersion": "radiofleet.io/v1alpha1",
                "kind": "FleetBroadcast",
                "name": "fleet",
                "uid": uid,
                "controller": True,
            }
        ]
    spec = {
        "serviceAccountName": "fleet-probe",
        "containers": [{"name": "c", "image": "example.invalid/c:1"}],
        **pod,
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": meta,
        "spec": {
            "selector": {"matchLabels": {"app.kubernetes.io/name": "probe"}},
            "template": {"metadata": {"labels": {"app.kubernetes.io/name": "probe"}}, "spec": spec},
        },
    }


def test_the_pods_meet_pod_security_restricted(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    cluster.kubectl(
        "label", "namespace", namespace, "pod-security.kubernetes.io/enforce=restricted"
    )
    operator = support.start_ready(operators, consumer={"placement": "sidecar"})
    support.apply(cluster, support.fleetbroadcast(namespace))
    support.eventually(
        "Ready with a consumer Deployment too",
        lambda: support.ready(cluster, namespace, "fleet"),
        logs=operator.tail,
    )
    shipped = yaml.safe_load((support.REPO / "manifests/00-namespace.yaml").read_text())
    assert shipped["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
