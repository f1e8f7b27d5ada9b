"""What pods and Deployments say: problems named by pod, sidecars, drains, probe reports."""

from __future__ import annotations

from typing import Any

import pytest

from fleetcast.operator import backends, observing, probing, publishing


def pod(
    name: str, *, waiting: str = "", unscheduled: bool = False, container: str = "gateway"
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": "Pending" if unscheduled else "Running", "podIP": "10.1.2.3"}
    if unscheduled:
        status["conditions"] = [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/2 nodes are available",
            }
        ]
    state = {"waiting": {"reason": waiting, "message": "back-off"}} if waiting else {"running": {}}
    status["containerStatuses"] = [{"name": container, "state": state}]
    return {
        "metadata": {
            "name": name,
            "namespace": "ns",
            "labels": {
                "app.kubernetes.io/instance": "fb",
                "app.kubernetes.io/component": "gateway",
            },
        },
        "spec": {
            "containers": [
                {"name": "gateway", "ports": [{"name": "http", "containerPort": 8080}]},
                {"name": "consumer", "ports": [{"name": "consumer", "containerPort": 8081}]},
            ]
        },
        "status": status,
    }


@pytest.mark.parametrize(
    ("waiting", "reason"),
    [
        ("ErrImagePull", "ImagePull"),
        ("ImagePullBackOff", "ImagePull"),
        ("InvalidImageName", "ImagePull"),
        ("CrashLoopBackOff", "CrashLoop"),
        ("CreateContainerConfigError", "ContainerConfig"),
    ],
)
def test_a_container_that_cannot_run_is_a_problem_naming_its_pod(waiting: str, reason: str) -> None:
    (problem,) = observing.pod_problems([pod("fb-gateway-1", waiting=waiting)])
    assert problem.reason == reason
    assert problem.message.startswith(f"pod fb-gateway-1 container gateway: {waiting}")


def test_unschedulable_and_terminating_pods() -> None:
    (problem,) = observing.pod_problems([pod("fb-gateway-2", unscheduled=True)])
    assert (problem.reason, problem.message) == (
        "Unschedulable",
        "pod fb-gateway-2: 0/2 nodes are available",
    )
    leaving = pod("fb-gateway-3", waiting="CrashLoopBackOff")
    leaving["metadata"]["deletionTimestamp"] = "2026-11-25T18:00:00Z"
    assert observing.pod_problems([leaving]) == []


def test_a_sidecars_problems_are_the_consumers_not_the_gateways() -> None:
    crashing = pod("fb-gateway-4", waiting="CrashLoopBackOff", container="consumer")
    assert observing.pod_problems([crashing], ("gateway",)) == []
    (problem,) = observing.pod_problems([crashing], ("consumer",), pod_level=False)
    assert problem.reason == "CrashLoop"


def test_deployment_conditions_give_deadline_and_replica_failures() -> None:
    deployment = {
        "metadata": {"name": "fb-consumer"},
        "status": {
            "conditions": [
                {
                    "type": "Progressing",
                    "status": "False",
                    "reason": "ProgressDeadlineExceeded",
                    "message": "timed out",
                },
                {
                    "type": "ReplicaFailure",
                    "status": "True",
                    "reason": "FailedCreate",
                    "message": "exceeded quota",
                },
            ]
        },
    }
    found = observing.deployment_problems(deployment)
    assert [(p.reason, p.message) for p in found] == [
        ("ProgressDeadlineExceeded", "Deployment fb-consumer: timed out"),
        ("ReplicaFailure", "Deployment fb-consumer: exceeded quota"),
    ]


def test_the_last_drain_is_the_termination_message_of_a_stopped_gateway() -> None:
    stopped = pod("fb-gateway-5")
    stopped["status"]["containerStatuses"] = [
        {
            "name": "gateway",
            "state": {
                "terminated": {
                    "exitCode": 0,
                    "finishedAt": "2026-11-25T18:01:00Z",
                    "message": "handed over 812/812 in 8.1 s",
                }
            },
        }
    ]
    assert publishing.drain_of(stopped) == {
        "pod": "fb-gateway-5",
        "finishedAt": "2026-11-25T18:01:00Z",
        "exitCode": 0,
        "message": "handed over 812/812 in 8.1 s",
    }
    assert publishing.drain_of(pod("fb-gateway-6")) is None


def test_probe_targets_are_the_running_pods_ports_the_spec_names() -> None:
    pending = pod("fb-gateway-7", unscheduled=True)
    targets = probing.targets([pod("fb-gateway-8"), pending])
    assert [(t.pod, t.component, t.port) for t in targets] == [
        ("fb-gateway-8", "gateway", 8080),
        ("fb-gateway-8", "consumer", 8081),
    ]
    assert targets[0].url("/stats") == "http://10.1.2.3:8080/stats"
    assert targets[0].key == ("ns", "fb")


def test_consumer_lag_is_summed_over_partitions() -> None:
    metrics = (
        "# TYPE fleetcast_consumer_lag gauge\n"
        'fleetcast_consumer_lag{topic="a",partition="0"} 3.0\n'
        'fleetcast_consumer_lag{topic="a",partition="1"} 4.0\n'
    )
    assert probing.consumer_lag(metrics) == 7
    assert probing.consumer_lag("") is None


def test_silent_pods_are_unknown_and_draining_ones_are_not_counted() -> None:
    silent = backends.PodReport(
        "fb-gateway-9", "gateway", answered=False, error="ConnectionRefused"
    )
    found = backends.condition([silent], 1, enabled=True)
    assert (found.status, found.reason) == ("Unknown", "NoAnswer")
    assert "fb-gateway-9: ConnectionRefused" in found.message
    draining = backends.PodReport(
        "fb-gateway-10", "gateway", answered=True, draining=True, connections=5
    )
    healthy = backends.PodReport(
        "fb-gateway-11", "gateway", answered=True, redis=True, connections=9
    )
    found = backends.condition([draining, healthy], 1, enabled=True)
    assert (found.status, found.reason) == ("True", "Reachable")
    assert backends.counters([draining, healthy])["gateway"]["connections"] == 14
