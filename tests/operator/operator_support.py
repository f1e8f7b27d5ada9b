"""Helpers of the operator tests: the operator as a subprocess, kubectl reads, bounded waits.

The operator runs exactly as in a pod: ``python -m fleetcast.operator`` with
its FLEETCAST_OPERATOR_* settings and a ServiceAccount kubeconfig bound to the
rules of charts/fleetcast/files/operator-{rbac,leader}-rules.yaml, never as
admin. Its JSON log lines go to a file the tests read. Pods are simulated by
kwok (their IPs lead nowhere), so the pod prober is off here.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from fleetcast.devtools import cluster_access
from fleetcast.devtools.ports import free_port

REPO = Path(__file__).resolve().parents[2]
CHART_FILES = REPO / "charts" / "fleetcast" / "files"
EXAMPLE = REPO / "manifests" / "example" / "fleetbroadcast.yaml"
#: Longest wait for anything the operator or a controller should do.
WAIT = 60.0
#: Longest wait for an operator process to start or stop.
PROCESS_WAIT = 30.0
FB = "fleetbroadcasts.radiofleet.io"
T = TypeVar("T")


def eventually(
    what: str,
    probe: Callable[[], T | None],
    timeout: float = WAIT,
    *,
    logs: Callable[[], str] | None = None,
) -> T:
    """Poll ``probe`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            detail = f"\n--- operator log (tail) ---\n{logs()}" if logs else ""
            pytest.fail(f"not within {timeout:.0f} s: {what}{detail}", pytrace=False)
        time.sleep(0.2)


def get(cluster: cluster_access.ClusterAccess, namespace: str, *what: str) -> Any:
    """``kubectl get ... -o json``; None when it does not exist."""
    out = cluster.kubectl("get", *what, "-n", namespace, "-o", "json", check=False)
    if out.returncode != 0:
        if "NotFound" in out.stderr:
            return None
        raise cluster_access.ClusterError(out.stderr)
    return json.loads(out.stdout)


def apply(cluster: cluster_access.ClusterAccess, *manifests: dict[str, Any]) -> None:
    document = {"apiVersion": "v1", "kind": "List", "items": list(manifests)}
    cluster.kubectl("apply", "-f", "-", input=json.dumps(document))


def replace(path: str, value: Any) -> dict[str, Any]:
    """A JSON-patch ``replace`` operation."""
    return {"op": "replace", "path": path, "value": value}


def events(
    cluster: cluster_access.ClusterAccess, namespace: str, reason: str
) -> list[dict[str, Any]]:
    """Events of that reason about a FleetBroadcast of the namespace."""
    found = get(cluster, namespace, "events", f"--field-selector=reason={reason}")
    return [e for e in found["items"] if e["involvedObject"]["kind"] == "FleetBroadcast"]


def condition(body: dict[str, Any] | None, kind: str) -> dict[str, Any]:
    for found in ((body or {}).get("status") or {}).get("conditions", []):
        if found["type"] == kind:
            return found  # type: ignore[no-any-return]
    return {}


def ready(
    cluster: cluster_access.ClusterAccess, namespace: str, name: str
) -> dict[str, Any] | None:
    """The FleetBroadcast if Ready for its current generation, else None."""
    body = get(cluster, namespace, FB, name)
    if condition(body, "Ready").get("status") != "True":
        return None
    current = body["status"].get("observedGeneration") == body["metadata"]["generation"]
    return body if current else None


def example(namespace: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The shipped example (manifests/example): its Secret and FleetBroadcast, in ``namespace``."""
    documents = [d for d in yaml.safe_load_all(EXAMPLE.read_text()) if d]
    secret = next(d for d in documents if d["kind"] == "Secret")
    broadcast = next(d for d in documents if d["kind"] == "FleetBroadcast")
    for document in (secret, broadcast):
        document["metadata"]["namespace"] = namespace
    return secret, broadcast


def fleetbroadcast(namespace: str, name: str = "fleet", **spec: Any) -> dict[str, Any]:
    """A small FleetBroadcast: one consumer, two gateways without autoscaling, a JWT Secret.

    New gateways count as available at once (minReadySeconds 0; the default
    10 s would add that much to every test's wait for Ready).
    """
    gateway = {
        "replicas": 2,
        "autoscaling": {"enabled": False},
        "drainSeconds": 5,
        "rollout": {"minReadySeconds": 0},
    }
    base: dict[str, Any] = {
        "kafka": {"bootstrapServers": "kafka.invalid:9092"},
        "redis": {"url": "redis://redis.invalid:6379/0"},
        "auth": {"jwtSecretRef": {"name": "jwt"}},
        "gateway": gateway,
    }
    return {
        "apiVersion": "radiofleet.io/v1alpha1",
        "kind": "FleetBroadcast",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {**base, **copy.deepcopy(spec)},
    }


def jwt_secret(namespace: str, name: str = "jwt") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"secret": "x" * 48},
    }


@dataclass
class Operator:
    """One ``fleetcast-operator`` process."""

    process: subprocess.Popen[bytes]
    log: Path
    health: str
    identity: str
    clusterwide: bool

    @property
    def metrics_url(self) -> str:
        return self.health.replace("/healthz", "/metrics")

    def lines(self) -> list[dict[str, Any]]:
        records = []
        for line in self.log.read_text(errors="replace").splitlines():
            try:
                records.append(json.loads(line))
            except ValueError:
                records.append({"event": line, "level": "raw"})
        return records

    def messages(self) -> list[str]:
        return [str(record.get("event", "")) for record in self.lines()]

    def tail(self, count: int = 40) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-count:])

    def reconciled(self, namespace: str, name: str) -> list[str]:
        return [m for m in self.messages() if m.startswith(f"reconciled {namespace}/{name} ")]

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(self.health, timeout=1) as response:  # noqa: S310 - loopback
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def kill(self) -> None:
        """SIGKILL: a crash (no cleanup, the Lease is not released)."""
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait(PROCESS_WAIT)

    def stop(self) -> None:
        """SIGTERM, as the kubelet does; kopf's cleanup runs and the Lease is released."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(PROCESS_WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(PROCESS_WAIT)


@dataclass
class Operators:
    """Starts operator processes for one namespace and stops them all at the end."""

    cluster: cluster_access.ClusterAccess
    namespace: str
    kubeconfig: Path
    scratch: Path
    #: The ClusterRoleBinding a cluster-wide operator needs (JSON), made on demand.
    cluster_binding: str = ""
    bound_clusterwide: bool = False
    #: Where the Lease lives (the operator's own namespace); default: ``namespace``.
    lease_namespace: str = ""
    started: list[Operator] = field(default_factory=list)

    def start(self, *, clusterwide: bool = False, leader: bool = True) -> Operator:
        """An operator process, once it is live and holds the Lease (or, with
        ``leader=False``, once it stands by behind the one that holds it).

        One at a time: a replica started while another holds the Lease stands
        by from its first moment, so tests never race the election.
        """
        if clusterwide and not self.bound_clusterwide:
            self.cluster.kubectl("apply", "-f", "-", input=self.cluster_binding)
            self.bound_clusterwide = True
        operator = self._launch(clusterwide)
        eventually("its liveness probe answers", operator.healthy, PROCESS_WAIT, logs=operator.tail)
        if leader:
            holds = functools.partial(self.holds_lease, operator)
            eventually("it holds the Lease", holds, PROCESS_WAIT, logs=operator.tail)
        else:
            waiting = functools.partial(self.stands_by, operator)
            eventually("it stands by", waiting, PROCESS_WAIT, logs=operator.tail)
        return operator

    def _launch(self, clusterwide: bool) -> Operator:
        port = free_port()
        identity = f"operator-{len(self.started)}"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCAST_")}
        env.update(
            KUBECONFIG=str(self.kubeconfig),
            FLEETCAST_OPERATOR_NAMESPACES="" if clusterwide else self.namespace,
            FLEETCAST_OPERATOR_LEASE_NAMESPACE=self.lease_namespace or self.namespace,
            FLEETCAST_OPERATOR_LEASE_NAME=self.lease_name,
            FLEETCAST_OPERATOR_IDENTITY=identity,
            FLEETCAST_OPERATOR_RESYNC_SECONDS="5",
            FLEETCAST_OPERATOR_RECHECK_SECONDS="1",
            FLEETCAST_OPERATOR_SECRET_CHECK_SECONDS="1",  # noqa: S106 - a period
            FLEETCAST_OPERATOR_PROBE_SECONDS="0",
            FLEETCAST_OPERATOR_HTTP_HOST="127.0.0.1",
            FLEETCAST_OPERATOR_HTTP_PORT=str(port),
            FLEETCAST_OPERATOR_LOG_LEVEL="info",
        )
        log = self.scratch / f"operator-{len(self.started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "fleetcast.operator"],
                env=env,
                stdout=sink,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        health = f"http://127.0.0.1:{port}/healthz"
        operator = Operator(process, log, health, identity, clusterwide)
        self.started.append(operator)
        return operator

    @property
    def lease_name(self) -> str:
        return "fleetcast-operator"

    def holder(self) -> str:
        space = self.lease_namespace or self.namespace
        lease = get(self.cluster, space, "leases.coordination.k8s.io", self.lease_name)
        return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")

    def holds_lease(self, operator: Operator) -> bool:
        return self.holder() == operator.identity

    def stands_by(self, operator: Operator) -> bool:
        return any(m.startswith("waiting for lease") for m in operator.messages())

    def stop_all(self) -> None:
        for operator in self.started:
            operator.stop()


def start_ready(operators: Operators, **spec: Any) -> Operator:
    """An operator, and a Ready FleetBroadcast "fleet" (with its Secret) in its namespace."""
    operator = operators.start()
    namespace = operators.namespace
    apply(operators.cluster, jwt_secret(namespace), fleetbroadcast(namespace, **spec))
    eventually("Ready", lambda: ready(operators.cluster, namespace, "fleet"), logs=operator.tail)
    return operator
