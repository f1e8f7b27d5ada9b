"""The chart's whole life on a real API server: install, a FleetBroadcast, upgrade, uninstall.

One test, in steps, because each step starts from the state the one before left
(a release, then its FleetBroadcast, then the upgraded release); every step
says what failed. The figures (seconds per step) are printed: run with -s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import pytest
import yaml

from fleetcast.devtools import cluster_access
from tests.e2e import conftest, objects

pytestmark = pytest.mark.e2e

RELEASE = "fc-e2e"
FULLNAME = f"{RELEASE}-fleetcast"
OPERATOR = f"{FULLNAME}-operator"
FLEET = "fleet"
#: Seconds for a FleetBroadcast to become Ready once applied (kwok pods are ready at once).
READY_TIMEOUT = 180.0
#: Seconds for the garbage collector to remove what a deleted owner owned.
GONE_TIMEOUT = 120.0
#: What the FleetBroadcast owns (kubectl resource names), with the HPA while autoscaling.
OWNED = ["serviceaccounts", "configmaps", "services", "deployments", "poddisruptionbudgets"]
INSTANCE_VALUES = [
    "--set", "fleetBroadcast.enabled=true",
    "--set", f"fleetBroadcast.name={FLEET}",
    "--set", "exampleSecrets.create=true",
    "--set", "exampleSecrets.jwtSecret=e2e-only-shared-secret",
]  # fmt: skip


@pytest.fixture
def start_operator(
    cluster: cluster_access.ClusterAccess,
    namespace: str,
    e2e_settings: conftest.E2ESettings,
    tmp_path: Path,
) -> Iterator[Callable[[], conftest.LocalOperator | None]]:
    """A function that starts the local operator (kwok only; on kind the chart runs it).

    It is called after `helm install`, which creates the ServiceAccount and RBAC
    the operator then authenticates with. Stopped when the test ends.
    """
    started: list[conftest.LocalOperator] = []

    def start() -> conftest.LocalOperator | None:
        if e2e_settings.image is not None:
            return None
        log = tmp_path / "operator.log"
        started.append(conftest.start_local_operator(cluster, namespace, OPERATOR, log))
        return started[-1]

    yield start
    for running in started:
        running.stop()


def test_install_fleetbroadcast_upgrade_uninstall(
    cluster: cluster_access.ClusterAccess,
    namespace: str,
    e2e_settings: conftest.E2ESettings,
    backing: conftest.Backing,
    start_operator: Callable[[], conftest.LocalOperator | None],
) -> None:
    figures: dict[str, float] = {}
    image = conftest.image_values(e2e_settings)
    adopt_existing_crds(cluster, namespace)

    started = time.monotonic()
    installed = cluster.helm(
        "install", RELEASE, str(objects.CHART), f"--namespace={namespace}",
        "--wait", "--timeout=3m", "--set", "crds.keep=false", *image,
    )  # fmt: skip
    figures["helm install --wait"] = time.monotonic() - started
    assert f"rollout status deployment/{OPERATOR}" in installed.stdout  # NOTES.txt
    check_release_objects(cluster, namespace, keep=False)

    local = start_operator()
    try:
        started = time.monotonic()
        upgraded = cluster.helm(
            "upgrade", RELEASE, str(objects.CHART), f"--namespace={namespace}", "--reuse-values",
            "--wait", "--timeout=3m", *INSTANCE_VALUES, *backing.helm_values(),
        )  # fmt: skip
        assert f"wait fleetbroadcast/{FLEET} --for=condition=Ready" in upgraded.stdout  # NOTES
        fleet = wait_ready(cluster, namespace, generation=1)
        figures["helm upgrade (creates the FleetBroadcast) -> Ready"] = time.monotonic() - started
        figures["FleetBroadcast created -> Ready (server timestamps, 1 s resolution)"] = (
            ready_after(fleet)
        )
        check_owned_objects(cluster, namespace, fleet, autoscaling=True)

        started = time.monotonic()
        cluster.helm(
            "upgrade", RELEASE, str(objects.CHART), f"--namespace={namespace}", "--reuse-values",
            "--wait", "--timeout=3m",
            "--set", "crds.keep=true",
            "--set", "fleetBroadcast.spec.gateway.autoscaling.enabled=false",
            "--set", "fleetBroadcast.spec.gateway.replicas=3",
        )  # fmt: skip
        fleet = wait_ready(cluster, namespace, generation=2)
        wait_gateway_replicas(cluster, namespace, 3)
        figures["helm upgrade -> converged"] = time.monotonic() - started
        check_owned_objects(cluster, namespace, fleet, autoscaling=False)
        check_release_objects(cluster, namespace, keep=True)  # the upgrade changed the CRDs

        if local is not None:
            local.stop()  # as its pod would be, while its ServiceAccount still exists
        started = time.monotonic()
        cluster.helm("uninstall", RELEASE, f"--namespace={namespace}", "--wait", "--timeout=3m")
        wait_nothing_left(cluster, namespace)
        figures["helm uninstall -> nothing left"] = time.monotonic() - started
        remove_kept_crds(cluster)
    except (AssertionError, cluster_access.ClusterError):
        if local is not None:
            print(f"--- operator log (last lines) ---\n{local.tail()}")
        raise
    for step, seconds in figures.items():
        print(f"e2e figure: {step}: {seconds:.1f} s")


def remove_kept_crds(cluster: cluster_access.ClusterAccess) -> None:
    """The CRDs outlive the release (crds.keep); delete them as an admin would, to leave none.

    Only now: deleting a CRD together with its FleetBroadcasts (crds.keep=false)
    races the garbage collector, which cannot resolve an owner whose kind is gone
    and then never deletes what the FleetBroadcast owned.
    """
    for name in objects.crd_names():
        crd = objects.get(cluster, "crd", name)
        assert crd is not None, f"{name} was not kept"
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep"
    cluster.kubectl("delete", "crd", "--wait=true", *objects.crd_names())


def adopt_existing_crds(cluster: cluster_access.ClusterAccess, namespace: str) -> None:
    """Let this release take over CRDs another test (or a previous run) created.

    Helm refuses to install over objects it does not own; with its ownership
    annotations and label set it adopts them (Helm >= 3.2), which is also how a
    user moves CRDs from `kubectl apply -f manifests/` to the chart.
    """
    for name in objects.crd_names():
        if objects.get(cluster, "crd", name) is None:
            continue
        cluster.kubectl(
            "annotate", "--overwrite", "crd", name,
            f"meta.helm.sh/release-name={RELEASE}", f"meta.helm.sh/release-namespace={namespace}",
        )  # fmt: skip
        cluster.kubectl("label", "--overwrite", "crd", name, "app.kubernetes.io/managed-by=Helm")


def check_release_objects(
    cluster: cluster_access.ClusterAccess, namespace: str, *, keep: bool
) -> None:
    """CRDs (served, labelled, kept or not), RBAC from the rule file, the operator Deployment."""
    conftest.wait_established(cluster)
    for name in objects.crd_names():
        crd = objects.get(cluster, "crd", name)
        assert crd is not None, name
        meta = crd["metadata"]
        assert meta["annotations"]["meta.helm.sh/release-name"] == RELEASE
        assert (meta["annotations"].get("helm.sh/resource-policy") == "keep") is keep, name
    rules = yaml.safe_load((objects.CHART / "files/operator-rbac-rules.yaml").read_text())
    role = objects.get(cluster, "clusterrole", OPERATOR)
    assert role is not None
    assert role["rules"] == rules
    binding = objects.get(cluster, "clusterrolebinding", OPERATOR)
    assert binding is not None
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": OPERATOR, "namespace": namespace}
    ]
    assert objects.get(cluster, "serviceaccount", OPERATOR, namespace) is not None
    deployment = objects.get(cluster, "deployment", OPERATOR, namespace)
    assert deployment is not None
    assert deployment["status"].get("readyReplicas") == 1


def wait_ready(
    cluster: cluster_access.ClusterAccess, namespace: str, generation: int
) -> objects.Obj:
    """The FleetBroadcast once Ready is True for ``generation``; its conditions on timeout."""
    last: list[objects.Obj | None] = [None]

    def ready() -> objects.Obj | None:
        last[0] = objects.get(cluster, "fleetbroadcast", FLEET, namespace)
        return last[0] if objects.is_true(last[0], "Ready", generation) else None

    try:
        return objects.wait_for(f"FleetBroadcast {FLEET} Ready", ready, READY_TIMEOUT)
    except objects.Timeout as err:
        status = (last[0] or {}).get("status")
        raise objects.Timeout(f"{err}; last status: {status}") from None


def ready_after(fleet: objects.Obj) -> float:
    """Seconds from the FleetBroadcast's creation to its Ready condition, by the server's clock."""
    ready = objects.condition(fleet, "Ready")
    assert ready is not None
    created = datetime.fromisoformat(fleet["metadata"]["creationTimestamp"])
    return (datetime.fromisoformat(ready["lastTransitionTime"]) - created).total_seconds()


def wait_gateway_replicas(
    cluster: cluster_access.ClusterAccess, namespace: str, replicas: int
) -> None:
    def converged() -> bool | None:
        found = objects.get(cluster, "deployment", f"{FLEET}-gateway", namespace)
        status = (found or {}).get("status", {})
        return True if status.get("readyReplicas") == replicas else None

    objects.wait_for(f"{replicas} ready gateways", converged, READY_TIMEOUT)


def check_owned_objects(
    cluster: cluster_access.ClusterAccess, namespace: str, fleet: objects.Obj, *, autoscaling: bool
) -> None:
    """Every object of the FleetBroadcast exists, is owned by it and, for pods, ready."""
    uid = fleet["metadata"]["uid"]
    selector = f"app.kubernetes.io/instance={FLEET}"
    kinds = [*OWNED, "horizontalpodautoscalers"]
    found = {kind: objects.names(cluster, kind, namespace, selector) for kind in kinds}
    assert len(found["deployments"]) == 2, found
    assert len(found["serviceaccounts"]) == 2, found
    assert len(found["configmaps"]) == 2, found
    assert found["services"] == [f"service/{FLEET}-gateway"], found
    assert len(found["poddisruptionbudgets"]) == 2, found  # gateway and consumer
    assert len(found["horizontalpodautoscalers"]) == (1 if autoscaling else 0), found
    for kind, listed in found.items():
        for ref in listed:
            obj = _get_ref(cluster, ref, namespace)
            owners = obj["metadata"].get("ownerReferences", [])
            assert [(o["kind"], o["uid"], o.get("controller")) for o in owners] == [
                ("FleetBroadcast", uid, True)
            ], f"{kind} {ref}"
    for component in ("gateway", "consumer"):
        deployment = _get_ref(cluster, f"deployment/{FLEET}-{component}", namespace)
        assert deployment["status"].get("readyReplicas", 0) >= 1, component
    assert fleet["status"]["gateway"]["readyReplicas"] >= 1


def _get_ref(cluster: cluster_access.ClusterAccess, ref: str, namespace: str) -> objects.Obj:
    kind, _, name = ref.partition("/")
    found = objects.get(cluster, kind, name, namespace)
    assert found is not None, ref
    return found


def wait_nothing_left(cluster: cluster_access.ClusterAccess, namespace: str) -> None:
    """No object of the release or of its FleetBroadcast remains (the CRDs are kept)."""
    selectors = [f"app.kubernetes.io/instance={RELEASE}", f"app.kubernetes.io/instance={FLEET}"]
    kinds = [
        *OWNED,
        "horizontalpodautoscalers",
        "secrets",
        "replicasets",
        "pods",
        "fleetbroadcasts",
    ]

    def leftovers() -> list[str]:
        left = [
            name
            for selector in selectors
            for kind in kinds
            for name in objects.names(cluster, kind, namespace, selector)
        ]
        left += [
            f"{kind}/{OPERATOR}"
            for kind in ("clusterrole", "clusterrolebinding")
            if objects.get(cluster, kind, OPERATOR) is not None
        ]
        return left

    last: list[list[str]] = [[]]

    def empty() -> bool | None:
        last[0] = leftovers()
        return True if not last[0] else None

    try:
        objects.wait_for("everything gone after helm uninstall", empty, GONE_TIMEOUT, interval=1.0)
    except objects.Timeout as err:
        raise objects.Timeout(f"{err}; left: {last[0]}") from None
