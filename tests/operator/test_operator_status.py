"""An honest status: a rollout that cannot finish is Degraded with the reason and the pod named.

kwok plays the kubelet, so a bad image or a crashing process is simulated the
way a kubelet would report it: the pod's status is patched (kwok leaves a
Running pod's status alone). Unschedulable pods, quota refusals and progress
deadlines come from the real scheduler and controllers.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from fleetcast.devtools import cluster_access
from tests.operator import operator_support as support

pytestmark = pytest.mark.operator


def degraded_with(
    cluster: cluster_access.ClusterAccess, namespace: str, reason: str
) -> dict[str, Any] | None:
    body = support.get(cluster, namespace, support.FB, "fleet")
    found = support.condition(body, "Degraded")
    return body if found.get("status") == "True" and reason in found.get("reason", "") else None


def gateway_pods(cluster: cluster_access.ClusterAccess, namespace: str) -> list[dict[str, Any]]:
    selector = "app.kubernetes.io/component=gateway"
    items: list[dict[str, Any]] = support.get(cluster, namespace, "pods", "-l", selector)["items"]
    return items


def set_waiting(
    cluster: cluster_access.ClusterAccess, namespace: str, pod: str, reason: str, message: str
) -> None:
    """What a kubelet writes for a container it cannot start or keeps restarting."""
    status = {
        "status": {
            "conditions": [
                {"type": "Ready", "status": "False", "reason": "ContainersNotReady"},
                {"type": "ContainersReady", "status": "False", "reason": "ContainersNotReady"},
            ],
            "containerStatuses": [
                {
                    "name": "gateway",
                    "image": "fleetcast:0.1.0",
                    "imageID": "",
                    "ready": False,
                    "restartCount": 4,
                    "started": False,
                    "state": {"waiting": {"reason": reason, "message": message}},
                }
            ],
        }
    }
    cluster.kubectl(
        "patch", "pod", pod, "-n", namespace, "--subresource=status", "--type=strategic",
        "-p", json.dumps(status),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("waiting", "reason"),
    [
        ("ImagePullBackOff", "ImagePull"),
        ("CrashLoopBackOff", "CrashLoop"),
    ],
)
def test_a_pod_that_cannot_run_makes_the_fleetbroadcast_degraded_naming_it(
    operators: support.Operators, namespace: str, waiting: str, reason: str
) -> None:
    cluster = operators.cluster
    operator = support.start_ready(operators)
    pod = gateway_pods(cluster, namespace)[0]["metadata"]["name"]

    set_waiting(cluster, namespace, pod, waiting, "back-off 40s restarting failed container")

    body = support.eventually(
        f"Degraded {reason}",
        lambda: degraded_with(cluster, namespace, reason),
        logs=operator.tail,
    )
    found = support.condition(body, "Degraded")
    assert found["reason"] == reason
    assert pod in found["message"]
    assert waiting in found["message"]
    assert support.condition(body, "Ready")["status"] == "False"


def test_pods_refused_by_a_quota_are_a_replica_failure(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = operators.start()
    quota = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "no-pods", "namespace": namespace},
        "spec": {"hard": {"pods": "0"}},
    }
    support.apply(cluster, quota)
    support.eventually(
        "the quota is counted",
        lambda: (
            support.get(cluster, namespace, "resourcequota", "no-pods").get("status") or {}
        ).get("hard"),
    )
    support.apply(cluster, support.jwt_secret(namespace), support.fleetbroadcast(namespace))

    body = support.eventually(
        "Degraded ReplicaFailure",
        lambda: degraded_with(cluster, namespace, "ReplicaFailure"),
        logs=operator.tail,
    )
    message = support.condition(body, "Degraded")["message"]
    assert "exceeded quota" in message, message
    assert "Deployment fleet-" in message, message


def test_unschedulable_pods_then_the_progress_deadline_are_degraded(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = operators.start()
    stuck = {
        "replicas": 1,
        "autoscaling": {"enabled": False},
        "pod": {"nodeSelector": {"fleetcast.test/nowhere": "true"}},
        "rollout": {"progressDeadlineSeconds": 10, "minReadySeconds": 0},
    }
    support.apply(
        cluster, support.jwt_secret(namespace), support.fleetbroadcast(namespace, gateway=stuck)
    )

    body = support.eventually(
        "Degraded Unschedulable",
        lambda: degraded_with(cluster, namespace, "Unschedulable"),
        logs=operator.tail,
    )
    message = support.condition(body, "Degraded")["message"]
    pod = gateway_pods(cluster, namespace)[0]["metadata"]["name"]
    assert pod in message, message

    body = support.eventually(
        "Degraded ProgressDeadlineExceeded",
        lambda: degraded_with(cluster, namespace, "ProgressDeadlineExceeded"),
        logs=operator.tail,
    )
    progressing = support.condition(body, "Progressing")
    assert (progressing["status"], progressing["reason"]) == ("False", "ProgressDeadlineExceeded")


def test_progressing_is_a_condition_of_its_own(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = support.start_ready(operators)
    body = support.get(cluster, namespace, support.FB, "fleet")
    done = support.condition(body, "Progressing")
    assert (done["status"], done["reason"]) == ("False", "Complete")

    support.apply(cluster, support.fleetbroadcast(namespace, image="fleetcast:0.2.0"))
    support.eventually(
        "Ready at generation 2",
        lambda: support.ready(cluster, namespace, "fleet"),
        logs=operator.tail,
    )
    body = support.get(cluster, namespace, support.FB, "fleet")
    assert support.condition(body, "Progressing")["reason"] == "Complete"
    assert support.condition(body, "Progressing")["observedGeneration"] == 2
