"""Every rendered manifest, server-side dry-run against the real API server.

`kubectl apply --dry-run=server` runs the whole server path (schema and CEL
validation of the CRD, defaulting, admission) without persisting anything, so
an object the API server would refuse fails here, for each ci/ scenario of the
chart and for manifests/ as `kubectl apply` users get it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from fleetcast.devtools import cluster_access
from tests.e2e import objects

pytestmark = [pytest.mark.e2e, pytest.mark.usefixtures("crds_served")]

CI_VALUES = sorted((objects.CHART / "ci").glob("*-values.yaml"))
MANIFESTS = objects.ROOT / "manifests"


def dry_run(cluster: cluster_access.ClusterAccess, text: str) -> list[str]:
    """Apply ``text`` with a server-side dry run; the objects the server accepted."""
    done = cluster.kubectl(
        "apply", "--dry-run=server", "--server-side", "--field-manager=fleetcast-e2e",
        "-o", "name", "-f", "-", input=text, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return done.stdout.split()


def kinds_in(text: str) -> list[str]:
    return [doc["kind"] for doc in yaml.safe_load_all(text) if doc]


@pytest.mark.parametrize("values", CI_VALUES, ids=lambda p: p.name)
def test_chart_scenario_is_accepted(
    cluster: cluster_access.ClusterAccess, namespace: str, values: Path
) -> None:
    rendered = objects.render(cluster, "dry", namespace, f"--values={values}")
    accepted = dry_run(cluster, rendered)
    assert len(accepted) == len(kinds_in(rendered))


def test_invalid_fleetbroadcast_is_refused(
    cluster: cluster_access.ClusterAccess, namespace: str
) -> None:
    """The dry run does check: the CRD's CEL rule refuses minReplicas > maxReplicas."""
    rendered = objects.render(
        cluster, "dry", namespace, "--set", "fleetBroadcast.enabled=true",
        "--set", "fleetBroadcast.spec.gateway.autoscaling.minReplicas=9",
        "--set", "fleetBroadcast.spec.gateway.autoscaling.maxReplicas=3",
        "--show-only", "templates/fleetbroadcast-fleetbroadcast.yaml",
    )  # fmt: skip
    done = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=rendered, check=False)
    assert done.returncode != 0
    assert "minReplicas must not be greater than maxReplicas" in done.stderr


def test_manifests_are_accepted(cluster: cluster_access.ClusterAccess, namespace: str) -> None:
    """manifests/ as `kubectl apply` sends it, moved into the test's namespace."""
    files = sorted(MANIFESTS.glob("*.yaml")) + sorted((MANIFESTS / "example").glob("*.yaml"))
    text = "\n---\n".join(path.read_text() for path in files)
    moved = re.sub(r"(?m)^(\s+namespace|  name): fleetcast$", rf"\1: {namespace}", text)
    accepted = dry_run(cluster, moved)
    assert len(accepted) == len(kinds_in(moved))
    assert any(name.startswith("fleetbroadcast.radiofleet.io/") for name in accepted)
