"""Pytest fixtures for a real Kubernetes API: `cluster`, `node_cluster` (session), `namespace`.

`cluster` starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler
and kwok (two fake nodes) once per session from the binaries tools/k8s/build.sh
built; `node_cluster` starts another control plane with a real node instead
(containerd, kubelet, kube-proxy, CoreDNS: `fleetcast.devtools.node`), whose
pods run, from the images `make images` built; `engine_crds` installs KEDA's
and prometheus-operator's CRDs on `cluster` for the session. Each yields a `ClusterAccess`:

    cluster.kubeconfig                  admin kubeconfig (Path)
    cluster.bin_dir                     folder with kubectl and helm of the pinned versions
    cluster.kubectl(*args, input=None, kubeconfig=None, check=True)
    cluster.helm(*args, kubeconfig=None, check=True)
    cluster.sa_kubeconfig(namespace, name)   kubeconfig of a ServiceAccount (bound token)

With FLEETCAST_TEST_KUBECONFIG set, that cluster is used for both and nothing is
started (the e2e suite on kind). Missing binaries fail the tests: `make test`
builds them first, so their absence is a broken install, never a reason to skip.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetcast.devtools import cluster as control_plane
from fleetcast.devtools import cluster_access

#: How long a new namespace may take to get its `default` ServiceAccount.
NAMESPACE_READY_TIMEOUT = 30.0
#: The checkout (tools/k8s/crds.sh lives there).
REPO = Path(__file__).resolve().parents[2]
#: Label on every namespace the fixture creates, to find leftovers.
TEST_LABEL = "fleetcast.io/test=true"


class ClusterSettings(BaseSettings):
    """Where the tests find their cluster."""

    model_config = SettingsConfigDict(env_prefix="FLEETCAST_")

    #: Kubeconfig of an existing cluster to test against instead of starting one.
    test_kubeconfig: Path | None = None


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[cluster_access.ClusterAccess]:
    """The session's cluster; torn down (processes and files) after the last test."""
    yield from _session_cluster(tmp_path_factory, real_node=False)


@pytest.fixture(scope="session")
def node_cluster(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[cluster_access.ClusterAccess]:
    """A cluster whose pods run: a control plane with a real node here (as root), or
    FLEETCAST_TEST_KUBECONFIG's cluster (kind). A machine that cannot run the node
    fails these tests with what to install, never skips them."""
    yield from _session_cluster(tmp_path_factory, real_node=True)


def _session_cluster(
    tmp_path_factory: pytest.TempPathFactory, *, real_node: bool
) -> Iterator[cluster_access.ClusterAccess]:
    settings = ClusterSettings()
    if settings.test_kubeconfig is not None:
        scratch = tmp_path_factory.mktemp("cluster")
        yield cluster_access.ClusterAccess(settings.test_kubeconfig, _bin_dir_if_built(), scratch)
        return
    local = _start_or_fail(real_node=real_node)
    try:
        yield local.access
    finally:
        local.stop()


def _start_or_fail(*, real_node: bool) -> control_plane.LocalCluster:
    problem = ""
    try:
        return control_plane.start(control_plane.Binaries.locate(), real_node=real_node)
    except control_plane.ClusterError as err:
        problem = str(err)  # failed outside the except block: no chained traceback
    what = "a control plane with a real node" if real_node else "the test control plane"
    pytest.fail(f"cannot start {what}: {problem}", pytrace=False)


def _bin_dir_if_built() -> Path | None:
    try:
        return control_plane.Binaries.locate().bin_dir
    except control_plane.ClusterError:
        return None  # an external cluster may come with kubectl/helm on PATH


@pytest.fixture(scope="session")
def engine_crds(cluster: cluster_access.ClusterAccess) -> list[str]:
    """KEDA's and prometheus-operator's real CRDs (tools/k8s/crds.sh), installed and served.

    Left installed for the session: other tests' operators then render into
    real schemas too, and CRDs are cluster-wide (deleting one mid-session
    would delete other tests' objects).
    """
    found = subprocess.run(
        [REPO / "tools/k8s/crds.sh", "--check"], capture_output=True, text=True, check=False
    )
    if found.returncode:
        pytest.fail(f"the engines' CRDs are not fetched: {found.stderr.strip()}", pytrace=False)
    names = []
    for path in sorted(Path(found.stdout.strip()).glob("*.yaml")):
        cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(path))
        names.append(f"crd/{yaml.safe_load(path.read_text())['metadata']['name']}")
    cluster.kubectl("wait", "--for=condition=Established", *names, "--timeout=60s")
    return names


@pytest.fixture
def namespace(
    cluster: cluster_access.ClusterAccess, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A fresh namespace for one test, ready for pods (its `default` ServiceAccount exists).

    Deleted afterwards without waiting: the namespace controller finishes it in
    the background, and names are unique, so no test waits on another's cleanup.
    """
    slug = re.sub(r"[^a-z0-9-]+", "-", request.node.name.lower()).strip("-")[:40].rstrip("-")
    name = f"t-{slug}-{secrets.token_hex(3)}"
    cluster.kubectl("create", "namespace", name)
    cluster.kubectl("label", "namespace", name, TEST_LABEL)
    _wait_for_default_service_account(cluster, name)
    yield name
    cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)


def _wait_for_default_service_account(cluster: cluster_access.ClusterAccess, name: str) -> None:
    deadline = time.monotonic() + NAMESPACE_READY_TIMEOUT
    while cluster.kubectl("get", "serviceaccount", "default", "-n", name, check=False).returncode:
        if time.monotonic() > deadline:
            pytest.fail(f"namespace {name} got no default ServiceAccount", pytrace=False)
        time.sleep(0.2)
