"""A FleetBroadcast's life under the real control plane: create, change, restart, delete.

kwok plays the kubelet, so pods become Ready without running the image; the
Deployment and ReplicaSet controllers, the scheduler and the garbage collector
are the real ones. The operator runs as a subprocess under its own RBAC.
"""

from __future__ import annotations

import contextlib
import json
import queue
import subprocess
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from fleetcast.devtools import cluster_access
from fleetcast.operator import rendering
from tests.operator import operator_support as support

pytestmark = pytest.mark.operator

OWNED_KINDS = (
    "deployments,services,configmaps,serviceaccounts,horizontalpodautoscalers,poddisruptionbudgets"
)
INSTANCE = "app.kubernetes.io/instance"


def owned(cluster: cluster_access.ClusterAccess, namespace: str, name: str) -> list[dict[str, Any]]:
    found = support.get(cluster, namespace, OWNED_KINDS, "-l", f"{INSTANCE}={name}")
    items: list[dict[str, Any]] = found["items"]
    return items


def test_the_example_becomes_ready_with_every_object_owned(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = operators.start()
    secret, broadcast = support.example(namespace)
    name = broadcast["metadata"]["name"]
    support.apply(cluster, secret)

    started = time.monotonic()
    support.apply(cluster, broadcast)
    body = support.eventually(
        "the example is Ready", lambda: support.ready(cluster, namespace, name), logs=operator.tail
    )
    elapsed = time.monotonic() - started
    print(f"kubectl apply -> Ready: {elapsed:.2f} s")  # the figure docs/operator.md quotes

    uid = body["metadata"]["uid"]
    objects = owned(cluster, namespace, name)
    assert sorted((o["kind"], o["metadata"]["name"]) for o in objects) == sorted(
        [
            ("ConfigMap", f"{name}-consumer-config"),
            ("ConfigMap", f"{name}-gateway-config"),
            ("Deployment", f"{name}-consumer"),
            ("Deployment", f"{name}-gateway"),
            ("HorizontalPodAutoscaler", f"{name}-gateway"),
            ("PodDisruptionBudget", f"{name}-consumer"),
            ("PodDisruptionBudget", f"{name}-gateway"),
            ("Service", f"{name}-gateway"),
            ("ServiceAccount", f"{name}-consumer"),
            ("ServiceAccount", f"{name}-gateway"),
        ]
    )
    for found in objects:
        (reference,) = found["metadata"]["ownerReferences"]
        assert (reference["uid"], reference["controller"]) == (uid, True)
        assert found["metadata"]["labels"][rendering.LABEL_MANAGED_BY] == rendering.MANAGER

    gateway = support.get(cluster, namespace, "deployment", f"{name}-gateway")
    pod = gateway["spec"]["template"]["spec"]
    assert pod["containers"][0]["image"] == broadcast["spec"]["image"]
    assert pod["containers"][0]["command"] == ["fleetcast-gateway"]
    assert gateway["spec"]["replicas"] == broadcast["spec"]["gateway"]["autoscaling"]["minReplicas"]
    assert body["status"]["gateway"]["ready"] == "2/2"
    assert body["status"]["consumer"]["ready"] == "1/1"
    assert {c["type"]: c["status"] for c in body["status"]["conditions"]} == {
        "Ready": "True",
        "Reconciled": "True",
        "Progressing": "False",
        "Degraded": "False",
        "GatewayAvailable": "True",
        "ConsumerAvailable": "True",
        "BackendsReachable": "Unknown",  # pods are simulated: probing is off here
    }

    # No finalizer (deletion never waits for the operator); kopf's notes under our prefix.
    assert not body["metadata"].get("finalizers")

    def annotations() -> dict[str, str]:
        found: dict[str, str] = support.get(cluster, namespace, support.FB, name)["metadata"].get(
            "annotations", {}
        )
        return found if any(key.startswith("fleetcast.radiofleet.io/") for key in found) else {}

    noted = support.eventually(
        "kopf's notes on the FleetBroadcast", annotations, logs=operator.tail
    )
    assert not any(key.startswith("kopf.zalando.org/") for key in noted), noted
    # The server's defaults, canonical forms and controllers' own fields never read as drift.
    assert not [m for m in operator.messages() if m.startswith("repaired in ")]
    assert not support.events(cluster, namespace, "DriftRepaired")
    columns = cluster.kubectl("get", "fb", name, "-n", namespace).stdout
    assert "True" in columns.splitlines()[1]
    assert "2/2" in columns


@contextlib.contextmanager
def ready_reasons(
    cluster: cluster_access.ClusterAccess, namespace: str, name: str
) -> Iterator[queue.Queue[str]]:
    """Every Ready reason the FleetBroadcast passes through, from a kubectl watch."""
    path = '{.status.conditions[?(@.type=="Ready")].reason}{"\\n"}'
    kubectl = [cluster.tool("kubectl"), f"--kubeconfig={cluster.kubeconfig}"]
    argv = [*kubectl, "get", support.FB, name, "-n", namespace, "-w", "-o", f"jsonpath={path}"]
    seen: queue.Queue[str] = queue.Queue()
    with subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
    ) as watch:

        def pump() -> None:
            assert watch.stdout is not None
            for line in watch.stdout:
                seen.put(line.strip())

        reader = threading.Thread(target=pump, daemon=True)
        reader.start()
        try:
            yield seen
        finally:
            watch.kill()
            reader.join(support.PROCESS_WAIT)


def reasons_until_ready(seen: queue.Queue[str]) -> list[str]:
    """Ready reasons up to "Available" after a "Progressing"."""
    sequence: list[str] = []
    while not ("Progressing" in sequence and sequence[-1] == "Available"):
        try:
            sequence.append(seen.get(timeout=support.WAIT))
        except queue.Empty:
            pytest.fail(f"Ready never went Progressing then Available: {sequence}", pytrace=False)
    return sequence


def test_a_spec_change_rolls_the_pods_through_progressing_to_ready(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = support.start_ready(operators)
    gateway_before = support.get(cluster, namespace, "deployment", "fleet-gateway")
    old_hash = gateway_before["spec"]["template"]["metadata"]["annotations"][
        rendering.CONFIG_HASH_ANNOTATION
    ]
    old_sets = {
        rs["metadata"]["name"] for rs in support.get(cluster, namespace, "replicasets")["items"]
    }

    with ready_reasons(cluster, namespace, "fleet") as reasons:
        changed = support.fleetbroadcast(
            namespace,
            image="fleetcast:0.2.0",
            gateway={
                "replicas": 3,
                "autoscaling": {"enabled": False},
                "ping": {"intervalSeconds": 10},
            },
            consumer={"replicas": 2},
        )
        support.apply(cluster, changed)
        body = support.eventually(
            "Ready after the change",
            lambda: support.ready(cluster, namespace, "fleet"),
            logs=operator.tail,
        )
        sequence = reasons_until_ready(reasons)
    assert sequence.index("Progressing") < len(sequence) - 1, sequence
    assert body["status"]["gateway"]["ready"] == "3/3"
    assert body["status"]["consumer"]["ready"] == "2/2"

    gateway = support.get(cluster, namespace, "deployment", "fleet-gateway")
    template = gateway["spec"]["template"]
    assert template["metadata"]["annotations"][rendering.CONFIG_HASH_ANNOTATION] != old_hash
    assert template["spec"]["containers"][0]["image"] == "fleetcast:0.2.0"
    config = support.get(cluster, namespace, "configmap", "fleet-gateway-config")
    assert config["data"]["FLEETCAST_PING_INTERVAL"] == "10"
    new_sets = {
        rs["metadata"]["name"] for rs in support.get(cluster, namespace, "replicasets")["items"]
    }
    assert new_sets - old_sets, "no new ReplicaSet: the pods were not rolled"
    pods = support.get(cluster, namespace, "pods", "-l", "app.kubernetes.io/component=gateway")[
        "items"
    ]
    hashes = {
        p["metadata"]["annotations"][rendering.CONFIG_HASH_ANNOTATION]
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
    }
    assert hashes == {template["metadata"]["annotations"][rendering.CONFIG_HASH_ANNOTATION]}


def test_deleting_the_fleetbroadcast_removes_everything(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    support.start_ready(operators)

    cluster.kubectl("delete", support.FB, "fleet", "-n", namespace, "--wait=true", "--timeout=30s")
    support.eventually("every owned object is gone", lambda: not owned(cluster, namespace, "fleet"))
    support.eventually(
        "every pod and ReplicaSet is gone",
        lambda: (
            not support.get(cluster, namespace, "pods,replicasets", "-l", f"{INSTANCE}=fleet")[
                "items"
            ]
        ),
    )


def test_an_operator_restart_duplicates_nothing_and_rolls_nothing(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    first = support.start_ready(operators)
    before = support.get(cluster, namespace, support.FB, "fleet")
    snapshot = state(cluster, namespace)
    first.stop()

    second = operators.start()
    support.eventually(
        "the new operator resumed", lambda: second.reconciled(namespace, "fleet"), logs=second.tail
    )
    time.sleep(2)  # let anything the resume might have triggered reach the controllers
    assert state(cluster, namespace) == snapshot
    after = support.get(cluster, namespace, support.FB, "fleet")
    assert after["status"]["conditions"] == before["status"]["conditions"]


def state(cluster: cluster_access.ClusterAccess, namespace: str) -> dict[str, Any]:
    """What a spurious rollout or a duplicate would change: objects, generations, pods."""
    objects = owned(cluster, namespace, "fleet")
    pods = support.get(cluster, namespace, "pods,replicasets", "-l", f"{INSTANCE}=fleet")["items"]
    return {
        "objects": sorted(
            (
                o["kind"],
                o["metadata"]["name"],
                o["metadata"]["uid"],
                o["metadata"].get("generation"),
            )
            for o in objects
        ),
        "pods": sorted((p["kind"], p["metadata"]["name"]) for p in pods),
        "dump": json.dumps(
            [o["spec"] for o in objects if o["kind"] == "Deployment"], sort_keys=True
        ),
    }


def test_a_cluster_wide_operator_serves_any_namespace(
    operators: support.Operators, namespace: str
) -> None:
    """The chart's default mode: no namespace list, a ClusterKopfPeering, cluster-wide watches."""
    cluster = operators.cluster
    operator = operators.start(clusterwide=True)
    support.apply(cluster, support.jwt_secret(namespace), support.fleetbroadcast(namespace))
    support.eventually(
        "Ready", lambda: support.ready(cluster, namespace, "fleet"), logs=operator.tail
    )
    assert operator.reconciled(namespace, "fleet")
