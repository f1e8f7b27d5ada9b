"""Fixtures of the e2e suite: which cluster, where the operator runs, the CRDs.

The cluster is the harness's `cluster` fixture: the local control plane
(etcd, kube-apiserver, controller-manager, scheduler, kwok nodes), or any
cluster named by FLEETCAST_TEST_KUBECONFIG (kind, with `make e2e-kind`).
tests/e2e/test_real_pods.py uses `node_cluster` instead: a control plane with a
real node here, the same FLEETCAST_TEST_KUBECONFIG cluster on kind.

Where the operator runs depends on whether the cluster runs real containers:

- kwok (here): pods are simulated, so the chart's operator Deployment only
  *looks* ready. The operator runs as a local process (`python -m
  fleetcast.operator`) with the Deployment's environment, authenticated as the
  chart's own ServiceAccount, so it has exactly the chart's settings and RBAC,
  as it would in its pod.
- kind: FLEETCAST_E2E_IMAGE names the image `make images` built and `kind load`
  put on the nodes; the chart runs the operator from it, and nothing runs locally.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetcast.devtools import cluster_access
from fleetcast.devtools.ports import free_port
from tests.e2e import objects

#: Seconds to wait for a CRD to be served after it is created.
CRD_ESTABLISHED_TIMEOUT = 60.0
#: Seconds the local operator gets to answer its liveness endpoint.
OPERATOR_START_TIMEOUT = 60.0
#: Seconds the local operator gets to stop on SIGTERM before it is killed.
OPERATOR_STOP_GRACE = 15.0


class E2ESettings(BaseSettings):
    """How the e2e suite runs (environment prefix FLEETCAST_E2E_)."""

    model_config = SettingsConfigDict(env_prefix="FLEETCAST_E2E_")

    #: The fleetcast image ("repo:tag") present on the cluster's nodes. Unset:
    #: pods are simulated (kwok) and the operator runs as a local process.
    image: str | None = None


@pytest.fixture(scope="session")
def e2e_settings() -> E2ESettings:
    return E2ESettings()


def image_values(settings: E2ESettings) -> list[str]:
    """`helm --set` arguments that point the chart at the e2e image, if there is one."""
    if settings.image is None:
        return []
    repository, _, tag = settings.image.rpartition(":")
    return ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}"]


@dataclass(frozen=True)
class Backing:
    """Kafka and Redis addresses for a FleetBroadcast."""

    kafka: str
    redis: str

    def helm_values(self) -> list[str]:
        return [
            "--set", f"fleetBroadcast.spec.kafka.bootstrapServers={self.kafka}",
            "--set", f"fleetBroadcast.spec.redis.url={self.redis}",
        ]  # fmt: skip


#: Where tests/e2e/backing-services.yaml puts Kafka and Redis (namespace fleetcast).
BACKING_FILE = objects.ROOT / "tests/e2e/backing-services.yaml"
BACKING_NAMESPACE = "fleetcast"
BACKING_TIMEOUT = 300


@pytest.fixture(scope="session")
def backing(cluster: cluster_access.ClusterAccess, e2e_settings: E2ESettings) -> Iterator[Backing]:
    """Kafka and Redis for the FleetBroadcasts of the suite.

    With real pods (kind) they run in the cluster from backing-services.yaml, so
    the gateways and consumers connect and become ready for real. With kwok no
    container runs, so nothing connects: the addresses only have to be valid.
    """
    if e2e_settings.image is None:
        yield Backing("kafka.streaming.svc:9092", "redis://redis.streaming.svc:6379/0")
        return
    cluster.kubectl("apply", "-f", str(BACKING_FILE))
    for name in ("redis", "kafka"):
        cluster.kubectl(
            "rollout", "status", f"deployment/{name}", f"--namespace={BACKING_NAMESPACE}",
            f"--timeout={BACKING_TIMEOUT}s", timeout=BACKING_TIMEOUT + 20,
        )  # fmt: skip
    ns = BACKING_NAMESPACE
    yield Backing(f"kafka.{ns}.svc:9092", f"redis://redis.{ns}.svc:6379/0")
    cluster.kubectl("delete", "-f", str(BACKING_FILE), "--wait=false", check=False)


@dataclass
class LocalOperator:
    """`python -m fleetcast.operator` as a child process, its logs in a file."""

    process: subprocess.Popen[bytes]
    log: Path

    def tail(self, lines: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(OPERATOR_STOP_GRACE)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_local_operator(
    cluster: cluster_access.ClusterAccess, namespace: str, deployment: str, log: Path
) -> LocalOperator:
    """Run the operator as its pod would: the chart's env, the chart's ServiceAccount.

    The environment is read from the operator Deployment Helm installed, so the
    process gets exactly the chart's settings (cluster-wide, its Lease name);
    what the pod would get from the downward API (its namespace and name) is
    set by hand, the HTTP endpoint moves to a free loopback port (and must
    answer), and the pod prober is off: kwok's pod IPs lead nowhere.
    """
    found = objects.get(cluster, "deployment", deployment, namespace)
    assert found is not None, deployment
    (container,) = found["spec"]["template"]["spec"]["containers"]
    pod_env = {entry["name"]: entry["value"] for entry in container["env"] if "value" in entry}
    port = free_port()
    env = {
        **os.environ,
        **pod_env,
        "KUBECONFIG": str(
            cluster.sa_kubeconfig(
                namespace, found["spec"]["template"]["spec"]["serviceAccountName"]
            )
        ),
        "FLEETCAST_OPERATOR_LEASE_NAMESPACE": namespace,
        "FLEETCAST_OPERATOR_IDENTITY": f"{deployment}-local",
        "FLEETCAST_OPERATOR_HTTP_HOST": "127.0.0.1",
        "FLEETCAST_OPERATOR_HTTP_PORT": str(port),
        "FLEETCAST_OPERATOR_PROBE_SECONDS": "0",
    }
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "fleetcast.operator"],
            env=env,
            stdout=sink,
            stderr=sink,
        )
    running = LocalOperator(process, log)
    try:
        objects.wait_for(
            "operator /healthz", lambda: _healthy(port) or None, OPERATOR_START_TIMEOUT
        )
    except objects.Timeout:
        running.stop()
        raise AssertionError(f"the operator never answered /healthz:\n{running.tail()}") from None
    return running


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


@pytest.fixture(scope="module")
def crds_served(cluster: cluster_access.ClusterAccess, engine_crds: list[str]) -> Iterator[None]:
    """The chart's CRDs exist and are served; those this fixture created are deleted after.

    KEDA's and prometheus-operator's (``engine_crds``) stay for the session: the
    chart's monitoring and autoscaling scenarios render objects of their kinds.

    Created with server-side apply from the same files the chart includes, so a
    later `helm install` can adopt them (see test_chart_lifecycle).
    """
    missing = [name for name in objects.crd_names() if objects.get(cluster, "crd", name) is None]
    for path in sorted((objects.CHART / "files").glob("crd-*.yaml")):
        cluster.kubectl("apply", "--server-side", "--field-manager=fleetcast-e2e", "-f", str(path))
    wait_established(cluster)
    yield
    for name in missing:
        cluster.kubectl("delete", "crd", name, "--wait=true", check=False)


def wait_established(cluster: cluster_access.ClusterAccess) -> None:
    cluster.kubectl(
        "wait", "--for=condition=Established", f"--timeout={CRD_ESTABLISHED_TIMEOUT:.0f}s",
        *(f"crd/{name}" for name in objects.crd_names()),
    )  # fmt: skip
