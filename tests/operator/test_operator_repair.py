"""The operator keeps things so: drift repaired, a missing Secret reported and then
picked up, one reconciler among several replicas, replicas kept across the HPA hand-over."""

from __future__ import annotations

import json
import time

import pytest

from fleetcast.operator import applying, rendering
from tests.operator import operator_support as support

pytestmark = pytest.mark.operator


def test_a_deleted_service_is_restored(operators: support.Operators, namespace: str) -> None:
    cluster = operators.cluster
    operator = support.start_ready(operators)
    old_uid = support.get(cluster, namespace, "service", "fleet-gateway")["metadata"]["uid"]

    cluster.kubectl("delete", "service", "fleet-gateway", "-n", namespace)

    def recreated() -> bool:
        service = support.get(cluster, namespace, "service", "fleet-gateway")
        return service is not None and service["metadata"]["uid"] != old_uid

    support.eventually("the Service is back", recreated, logs=operator.tail)
    said = support.eventually(
        "a DriftRepaired event", lambda: support.events(cluster, namespace, "DriftRepaired")
    )
    assert "Service fleet-gateway was missing: created again" in [e["message"] for e in said]


def test_a_hand_edited_deployment_is_restored(operators: support.Operators, namespace: str) -> None:
    cluster = operators.cluster
    operator = support.start_ready(operators)
    edit = [
        {"op": "replace", "path": "/spec/replicas", "value": 7},
        {"op": "replace", "path": "/spec/template/spec/containers/0/image", "value": "evil:latest"},
        {"op": "remove", "path": "/metadata/labels/app.kubernetes.io~1part-of"},
    ]
    cluster.kubectl(
        "patch",
        "deployment",
        "fleet-gateway",
        "-n",
        namespace,
        "--type=json",
        "-p",
        json.dumps(edit),
    )

    def restored() -> bool:
        found = support.get(cluster, namespace, "deployment", "fleet-gateway")
        container = found["spec"]["template"]["spec"]["containers"][0]
        labels = found["metadata"]["labels"]
        return (
            found["spec"]["replicas"] == 2
            and container["image"] != "evil:latest"
            and "app.kubernetes.io/part-of" in labels
        )

    support.eventually("the Deployment is restored", restored, logs=operator.tail)
    support.eventually(
        "Ready again", lambda: support.ready(cluster, namespace, "fleet"), logs=operator.tail
    )


def test_a_missing_secret_is_degraded_until_it_is_created(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = operators.start()
    support.apply(cluster, support.fleetbroadcast(namespace))

    def degraded() -> dict[str, object] | None:
        body = support.get(cluster, namespace, support.FB, "fleet")
        found = support.condition(body, "Degraded")
        return body if found.get("status") == "True" else None

    body = support.eventually("Degraded", degraded, logs=operator.tail)
    found = support.condition(body, "Degraded")
    assert found["reason"] == "SecretMissing"
    assert "'jwt' (auth.jwtSecretRef) does not exist" in found["message"]
    assert support.condition(body, "Ready")["reason"] == "SecretMissing"
    # The rest is applied already, so pods start as soon as the Secret exists.
    assert support.get(cluster, namespace, "deployment", "fleet-gateway") is not None
    time.sleep(3)  # several rechecks (every 1 s here)
    assert not [line for line in operator.lines() if line.get("level") in ("error", "critical")]
    # Announced once, not per retry.
    assert len(support.events(cluster, namespace, "SecretMissing")) <= 2

    support.apply(cluster, support.jwt_secret(namespace))
    support.eventually(
        "Ready once the Secret exists",
        lambda: support.ready(cluster, namespace, "fleet"),
        logs=operator.tail,
    )


def test_only_one_of_two_operators_reconciles_and_the_other_takes_over(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    leader = operators.start()
    standby = operators.start(leader=False)
    support.apply(cluster, support.jwt_secret(namespace), support.fleetbroadcast(namespace))
    support.eventually(
        "Ready", lambda: support.ready(cluster, namespace, "fleet"), logs=leader.tail
    )
    time.sleep(6)  # a resync period: the standby must not act then either
    assert leader.reconciled(namespace, "fleet")
    assert not standby.reconciled(namespace, "fleet")

    leader.stop()
    support.apply(cluster, support.fleetbroadcast(namespace, consumer={"replicas": 2}))
    support.eventually(
        "the standby reconciles generation 2",
        lambda: [m for m in standby.reconciled(namespace, "fleet") if "generation 2:" in m],
        logs=standby.tail,
    )
    support.eventually(
        "Ready again", lambda: support.ready(cluster, namespace, "fleet"), logs=standby.tail
    )


def test_turning_autoscaling_on_keeps_the_replica_count(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = support.start_ready(
        operators, gateway={"replicas": 4, "autoscaling": {"enabled": False}}
    )
    autoscaled = {
        "replicas": 4,
        "autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 8},
    }
    support.apply(cluster, support.fleetbroadcast(namespace, gateway=autoscaled))
    support.eventually(
        "the HPA exists",
        lambda: support.get(cluster, namespace, "hpa", "fleet-gateway"),
        logs=operator.tail,
    )
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        gateway = support.get(
            cluster, namespace, "deployment", "fleet-gateway", "--show-managed-fields"
        )
        assert gateway["spec"]["replicas"] == 4
        time.sleep(0.2)
    owners = {
        e["manager"]
        for e in gateway["metadata"]["managedFields"]
        if "f:replicas" in e["fieldsV1"].get("f:spec", {})
    }
    assert rendering.MANAGER not in owners
    assert applying.HANDOVER_MANAGER in owners


def test_a_refused_apply_is_reported_retried_and_posted_as_events(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = operators.start()
    bogus = {"enabled": True, "metrics": [{"type": "Bogus"}]}  # passed through to the HPA
    support.apply(
        cluster,
        support.jwt_secret(namespace),
        support.fleetbroadcast(namespace, gateway={"autoscaling": bogus}),
    )

    def refused() -> dict[str, object] | None:
        found = support.condition(
            support.get(cluster, namespace, support.FB, "fleet"), "Reconciled"
        )
        return found if found.get("reason") == "ApplyFailed" else None

    reconciled = support.eventually("Reconciled=False ApplyFailed", refused, logs=operator.tail)
    assert "HorizontalPodAutoscaler" in str(reconciled["message"])
    ready = support.condition(support.get(cluster, namespace, support.FB, "fleet"), "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "ApplyFailed")
    assert support.events(cluster, namespace, "ApplyFailed"), "no Warning event for the transition"
    support.eventually(
        "kopf posts the handler's error as an Event",
        lambda: [e for e in support.events(cluster, namespace, "Logging") if e["type"] == "Error"],
        logs=operator.tail,
    )
    assert operator.process.poll() is None, "the operator must not crash"
