"""The Helm chart, rendered and linted by the pinned helm for every ci/ scenario.

No cluster here: `helm template` and `helm lint` only (the same renders are
server-side dry-run against a real API server in tests/e2e). helm is the one
tools/k8s/build.sh builds; a missing helm fails, since `make test` builds it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "fleetcast"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
FLEETBROADCAST_API = "radiofleet.io/v1alpha1/FleetBroadcast"
SCHEMA_ERROR = "values don't meet the specifications of the schema"


@pytest.fixture(scope="module")
def helm() -> Path:
    """The pinned helm: $HELM (as for scripts/manifests.sh) or tools/k8s/build.sh's."""
    if os.environ.get("HELM"):
        return Path(os.environ["HELM"])
    found = subprocess.run(
        [ROOT / "tools/k8s/build.sh", "--check"], capture_output=True, text=True, check=False
    )
    if found.returncode:
        pytest.fail(f"helm is not built: {found.stderr.strip()}", pytrace=False)
    return Path(found.stdout.strip()) / "helm"


def run_helm(helm: Path, *args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([helm, *args], capture_output=True, text=True, check=False, timeout=60)


def render(helm: Path, *args: str | Path, served: bool = True) -> list[dict[str, Any]]:
    """Objects of `helm template`; served=True tells helm the FleetBroadcast API exists."""
    extra = ["--api-versions", FLEETBROADCAST_API] if served else []
    done = run_helm(helm, "template", "fc", CHART, "--namespace", "fleet", *extra, *args)
    assert done.returncode == 0, done.stderr
    return [doc for doc in yaml.safe_load_all(done.stdout) if doc]


def by_kind(objects: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    kinds: dict[str, list[dict[str, Any]]] = {}
    for obj in objects:
        kinds.setdefault(obj["kind"], []).append(obj)
    return kinds


def test_ci_scenarios_exist() -> None:
    names = [path.name for path in CI_VALUES]
    assert names[:4] == [
        "01-defaults-values.yaml",
        "02-autoscaling-off-values.yaml",
        "03-external-secret-values.yaml",
        "04-custom-topics-values.yaml",
    ]


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_lint_is_clean(helm: Path, values: Path) -> None:
    done = run_helm(helm, "lint", CHART, "--strict", "--values", values)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_every_object_is_labelled_and_placed(helm: Path, values: Path) -> None:
    for obj in render(helm, "--values", values):
        labels = obj["metadata"]["labels"]
        assert labels["app.kubernetes.io/instance"] == "fc"
        assert labels["app.kubernetes.io/part-of"] == "fleetcast"
        cluster_scoped = obj["kind"] in {
            "CustomResourceDefinition",
            "ClusterRole",
            "ClusterRoleBinding",
            "ValidatingAdmissionPolicy",
            "ValidatingAdmissionPolicyBinding",
        }
        assert ("namespace" not in obj["metadata"]) == cluster_scoped, obj["kind"]


def test_defaults_install_crd_rbac_and_operator(helm: Path) -> None:
    kinds = by_kind(render(helm))
    assert sorted(kinds) == [
        "ClusterRole",
        "ClusterRoleBinding",
        "CustomResourceDefinition",
        "Deployment",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "ValidatingAdmissionPolicy",
        "ValidatingAdmissionPolicyBinding",
    ]
    (binding,) = kinds["ClusterRoleBinding"]
    (account,) = kinds["ServiceAccount"]
    subject = {"kind": "ServiceAccount", "name": account["metadata"]["name"], "namespace": "fleet"}
    assert binding["subjects"] == [subject]
    assert binding["roleRef"]["name"] == kinds["ClusterRole"][0]["metadata"]["name"]
    (leader,) = kinds["Role"]
    assert leader["metadata"]["namespace"] == "fleet"
    assert leader["rules"] == yaml.safe_load(
        (CHART / "files/operator-leader-rules.yaml").read_text()
    )
    (policy,) = kinds["ValidatingAdmissionPolicy"]
    (condition,) = policy["spec"]["matchConditions"]
    assert account["metadata"]["name"] in condition["expression"]


def test_watched_namespaces_get_roles_and_nothing_is_cluster_wide(helm: Path) -> None:
    kinds = by_kind(render(helm, "--set", "operator.watchNamespaces={team-a,team-b}"))
    assert not {"ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy"} & set(kinds)
    roles = {(r["metadata"]["namespace"], r["metadata"]["name"]) for r in kinds["Role"]}
    assert roles == {
        ("team-a", "fc-fleetcast-operator"),
        ("team-b", "fc-fleetcast-operator"),
        ("fleet", "fc-fleetcast-operator-leader"),
    }
    bindings = {b["metadata"]["namespace"]: b for b in kinds["RoleBinding"]}
    assert bindings["team-a"]["subjects"][0]["namespace"] == "fleet"
    source = yaml.safe_load((CHART / "files/operator-rbac-rules.yaml").read_text())
    assert (
        next(r for r in kinds["Role"] if r["metadata"]["namespace"] == "team-a")["rules"] == source
    )


def test_secret_names_narrow_the_secret_rule(helm: Path) -> None:
    (role,) = by_kind(render(helm, "--set", "operator.rbac.secretNames={jwt,redis}"))["ClusterRole"]
    (secrets,) = [r for r in role["rules"] if "secrets" in r["resources"]]
    assert secrets == {
        "apiGroups": [""],
        "resources": ["secrets"],
        "verbs": ["get"],
        "resourceNames": ["jwt", "redis"],
    }


def test_crds_are_the_operators_files_with_keep(helm: Path) -> None:
    sources = {
        doc["metadata"]["name"]: doc
        for doc in (yaml.safe_load(p.read_text()) for p in (CHART / "files").glob("crd-*.yaml"))
    }
    assert "fleetbroadcasts.radiofleet.io" in sources
    crds = by_kind(render(helm))["CustomResourceDefinition"]
    assert {crd["metadata"]["name"] for crd in crds} == set(sources)
    for crd in crds:
        assert crd["spec"] == sources[crd["metadata"]["name"]]["spec"]
        assert crd["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
    for crd in by_kind(render(helm, "--set", "crds.keep=false"))["CustomResourceDefinition"]:
        assert "annotations" not in crd["metadata"]
    assert "CustomResourceDefinition" not in by_kind(render(helm, "--set", "crds.enabled=false"))


def test_cluster_role_is_the_operators_rule_file(helm: Path) -> None:
    source = yaml.safe_load((CHART / "files/operator-rbac-rules.yaml").read_text())
    (role,) = by_kind(render(helm))["ClusterRole"]
    assert role["rules"] == source


def test_operator_pod_is_locked_down(helm: Path) -> None:
    (deployment,) = by_kind(render(helm))["Deployment"]
    pod = deployment["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert container["securityContext"] == {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
    }
    assert container["command"] == ["fleetcast-operator"]
    assert (
        container["image"]
        == "fleetcast:" + yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]
    )
    assert container["resources"]["limits"]["memory"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    env = {e["name"]: e.get("value", e.get("valueFrom")) for e in container["env"]}
    assert env["FLEETCAST_OPERATOR_HTTP_PORT"] == "8080"
    assert env["FLEETCAST_OPERATOR_LEASE_NAME"] == "fc-fleetcast-operator"
    assert env["FLEETCAST_OPERATOR_LEASE_NAMESPACE"] == {
        "fieldRef": {"fieldPath": "metadata.namespace"}
    }


def test_fleetbroadcast_gets_the_chart_image(helm: Path) -> None:
    values = CHART / "ci/04-custom-topics-values.yaml"
    kinds = by_kind(render(helm, "--values", values, "--set", "imagePullSecrets[0].name=regcred"))
    (fleet,) = kinds["FleetBroadcast"]
    assert fleet["spec"]["imagePullSecrets"] == ["regcred"]
    assert fleet["spec"]["imagePullPolicy"] == "IfNotPresent"
    digest = "sha256:" + "0123456789abcdef" * 4
    assert fleet["spec"]["image"] == f"registry.example.internal/radio/fleetcast@{digest}"
    assert fleet["spec"]["kafka"]["topics"] == [
        "cad.incidents.v2",
        "avl.positions.v1",
        "alerting.alerts",
    ]
    (secret,) = kinds["Secret"]
    assert secret["metadata"]["name"] == fleet["spec"]["auth"]["jwtSecretRef"]["name"]
    assert fleet["spec"]["auth"]["jwtSecretRef"]["key"] in secret["data"]


def test_external_secrets_are_referenced_not_created(helm: Path) -> None:
    kinds = by_kind(render(helm, "--values", CHART / "ci/03-external-secret-values.yaml"))
    assert "Secret" not in kinds
    assert "ServiceAccount" not in kinds
    (fleet,) = kinds["FleetBroadcast"]
    assert fleet["metadata"]["name"] == "dispatch"
    assert fleet["spec"]["redis"] == {"secretRef": {"name": "dispatch-redis", "key": "url"}}
    (binding,) = kinds["ClusterRoleBinding"]
    assert binding["subjects"][0]["name"] == "fleetcast-operator-external"


def test_fleetbroadcast_waits_for_its_api(helm: Path) -> None:
    """Helm cannot create a kind its own release introduces: left out until it is served."""
    values = CHART / "ci/02-autoscaling-off-values.yaml"
    assert "FleetBroadcast" not in by_kind(render(helm, "--values", values, served=False))
    assert "FleetBroadcast" in by_kind(render(helm, "--values", values, served=True))


@pytest.mark.parametrize(
    "bad",
    [
        "image.pullPolicy=Sometimes",
        "image.digest=latest",
        "operator.replicas=-1",
        "operator.logLevel=verbose",
        "operator.replica=2",
        "crds.enabled=yes-please",
        "fleetBroadcast.spec.gateway.replicas=many",
        "fleetBroadcast.spec.redis.url=http://redis:6379",
    ],
)
def test_schema_rejects_bad_values(helm: Path, bad: str) -> None:
    done = run_helm(helm, "template", "fc", CHART, "--set", bad)
    assert done.returncode != 0
    assert SCHEMA_ERROR in done.stderr


@pytest.mark.drift
def test_values_schema_is_generated_from_values() -> None:
    done = subprocess.run(
        [ROOT / ".venv/bin/python", ROOT / "scripts/values_schema.py", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
