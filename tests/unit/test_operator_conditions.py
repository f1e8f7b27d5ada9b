"""Status bookkeeping: the seven conditions, the roll-up, lastTransitionTime, the status shape."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fleetcast.operator import backends, conditions, statuses, statusmodel
from fleetcast.operator.conditions import Condition
from fleetcast.operator.observing import Problem, Rollout

T0 = datetime(2026, 11, 25, 18, 0, 0, tzinfo=UTC)
APPLIED = Condition(conditions.RECONCILED, "True", "Applied", "generation 3 applied", 3)
DONE = Rollout(
    exists=True,
    desired=2,
    total=2,
    ready=2,
    updated=2,
    available=2,
    observed=True,
    available_condition=True,
)
ROLLING = Rollout(
    exists=True,
    desired=2,
    total=3,
    ready=2,
    updated=1,
    available=2,
    observed=True,
    available_condition=True,
)


def evaluated(
    generation: int = 3,
    reconciled: Condition | None = APPLIED,
    gateway: Rollout = DONE,
    consumer: Rollout = DONE,
    backends_: Condition | None = None,
) -> dict[str, Condition]:
    found = conditions.evaluate(generation, reconciled, backends_, gateway, consumer)
    return {c.type: c for c in found}


def deployment(**status: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "fb-gateway", "generation": 4},
        "spec": {"replicas": 3},
        "status": status,
    }


def test_rollout_reads_a_deployment_status() -> None:
    rollout = Rollout.of(
        deployment(
            observedGeneration=4,
            replicas=3,
            readyReplicas=3,
            updatedReplicas=3,
            availableReplicas=3,
            conditions=[{"type": "Available", "status": "True"}],
        )
    )
    assert rollout.complete
    assert rollout.serving
    assert rollout.summary() == {
        "replicas": 3,
        "readyReplicas": 3,
        "updatedReplicas": 3,
        "ready": "3/3",
    }


def test_rollout_is_incomplete_until_observed_updated_and_old_pods_gone() -> None:
    assert not Rollout.of(
        deployment(observedGeneration=3, replicas=3, updatedReplicas=3, availableReplicas=3)
    ).complete
    assert not Rollout.of(
        deployment(observedGeneration=4, replicas=4, updatedReplicas=3, availableReplicas=3)
    ).complete
    assert not Rollout.of(None).exists


def test_ready_when_applied_healthy_and_rolled_out() -> None:
    found = evaluated()
    assert [c for c in found] == list(conditions.TYPES[:-1])  # no probe report: no Backends yet
    assert (found["Ready"].status, found["Ready"].reason) == ("True", "Available")
    assert (found["Progressing"].status, found["Progressing"].reason) == ("False", "Complete")
    assert (found["Degraded"].status, found["Degraded"].reason) == ("False", "Healthy")


def test_a_failed_reconcile_is_degraded_and_lends_ready_its_reason() -> None:
    missing = Condition(
        conditions.RECONCILED, "False", "SecretMissing", "Secret 'jwt' does not exist", 3
    )
    found = evaluated(reconciled=missing)
    assert (found["Degraded"].status, found["Degraded"].reason) == ("True", "SecretMissing")
    assert (found["Ready"].status, found["Ready"].reason) == ("False", "SecretMissing")
    assert found["Ready"].message == missing.message


def test_progressing_while_a_new_generation_is_unapplied_or_rolling() -> None:
    assert evaluated(generation=4)["Progressing"].reason == "NewGeneration"
    assert evaluated(generation=4)["Ready"].reason == conditions.PROGRESSING
    found = evaluated(gateway=ROLLING)
    assert (found["Progressing"].status, found["Progressing"].reason) == ("True", "RollingOut")
    assert "gateway" in found["Progressing"].message
    assert (found["Ready"].status, found["Ready"].reason) == ("False", conditions.PROGRESSING)


@pytest.mark.parametrize(
    ("problem", "stalled"),
    [
        (Problem("ProgressDeadlineExceeded", "Deployment fb-gateway: timed out"), True),
        (Problem("ImagePull", "pod fb-gateway-x container gateway: ImagePullBackOff"), False),
    ],
)
def test_rollout_problems_are_degraded_naming_what_is_wrong(
    problem: Problem, stalled: bool
) -> None:
    found = evaluated(gateway=ROLLING.with_problems([problem]))
    assert (found["Degraded"].status, found["Degraded"].reason) == ("True", problem.reason)
    assert problem.message in found["Degraded"].message
    assert found["Ready"].reason == problem.reason
    expected = ("False", "ProgressDeadlineExceeded") if stalled else ("True", "RollingOut")
    assert (found["Progressing"].status, found["Progressing"].reason) == expected


def test_many_problems_are_listed_then_counted() -> None:
    many = [Problem("CrashLoop", f"pod p{i}: CrashLoopBackOff") for i in range(8)]
    degraded = evaluated(gateway=DONE.with_problems(many))["Degraded"]
    assert degraded.message.endswith("; and 3 more")
    assert "pod p4" in degraded.message
    assert "pod p5" not in degraded.message


def test_someone_elses_deployment_is_a_conflict_never_our_gateway() -> None:
    theirs = Rollout.of(
        {"metadata": {"name": "fb-gateway"}},
        conflict="Deployment fb-gateway exists and is not owned",
    )
    found = evaluated(gateway=theirs)
    gateway = found["GatewayAvailable"]
    assert (gateway.status, gateway.reason) == ("False", "Conflict")
    assert "Deployment fb-gateway" in gateway.message
    assert found["Ready"].status == "False"


def test_missing_or_unavailable_components_are_named() -> None:
    assert (
        evaluated(consumer=Rollout(exists=False))["ConsumerAvailable"].reason == "DeploymentMissing"
    )
    down = Rollout(
        exists=True,
        desired=2,
        total=2,
        updated=2,
        available=2,
        observed=True,
        available_condition=False,
    )
    assert evaluated(gateway=down)["Ready"].reason == "GatewayUnavailable"


def test_unreachable_backends_keep_ready_false_unknown_does_not() -> None:
    report = backends.PodReport("fb-consumer-x", "consumer", answered=True, kafka=False, redis=True)
    unreachable = backends.condition([report], 3, enabled=True)
    assert (unreachable.status, unreachable.reason) == ("False", "KafkaUnreachable")
    assert evaluated(backends_=unreachable)["Ready"].reason == "KafkaUnreachable"
    off = backends.condition([], 3, enabled=False)
    assert (off.status, off.reason) == ("Unknown", "NotProbed")
    assert evaluated(backends_=off)["Ready"].status == "True"


def test_last_transition_time_moves_only_when_status_changes() -> None:
    healthy = Condition(conditions.DEGRADED, "False", "Healthy", "ok", 3)
    first = conditions.merge([], [healthy], T0)
    assert first[0]["lastTransitionTime"] == "2026-11-25T18:00:00Z"
    reworded = Condition(conditions.DEGRADED, "False", "Healthy", "still ok", 4)
    later = conditions.merge(first, [reworded], T0 + timedelta(minutes=5))
    assert later[0]["lastTransitionTime"] == "2026-11-25T18:00:00Z"
    assert (later[0]["message"], later[0]["observedGeneration"]) == ("still ok", 4)
    flipped = Condition(conditions.DEGRADED, "True", "SecretMissing", "gone", 4)
    last = conditions.merge(later, [flipped], T0 + timedelta(minutes=9))
    assert last[0]["lastTransitionTime"] == "2026-11-25T18:09:00Z"


def test_a_status_keeps_the_stored_verdicts_and_counters_and_fits_the_crd() -> None:
    reports = [
        backends.PodReport("fb-gateway-a", "gateway", answered=True, redis=True, connections=40),
        backends.PodReport("fb-gateway-b", "gateway", answered=True, redis=True, connections=2),
        backends.PodReport(
            "fb-consumer-a", "consumer", answered=True, kafka=True, redis=True, lag=7
        ),
    ]
    seen = statuses.Observation(
        generation=3,
        gateway=DONE,
        consumer=DONE,
        reconciled=APPLIED,
        backends=backends.condition(reports, 3, enabled=True),
        reports=reports,
        last_drain={"pod": "fb-gateway-old", "message": "handed over 812 in 8.1 s"},
    )
    status = statuses.build({}, seen, T0)
    assert status["observedGeneration"] == 3
    assert status["gateway"]["connections"] == 42
    assert status["gateway"]["pods"][0] == {
        "name": "fb-gateway-a",
        "connections": 40,
        "draining": False,
    }
    assert status["consumer"]["lag"] == 7
    statusmodel.FleetBroadcastStatus.model_validate(status)  # nothing the API server would prune
    later = statuses.Observation(generation=3, gateway=DONE, consumer=DONE)
    again = statuses.build(status, later, T0 + timedelta(hours=1))
    assert again == status


def test_condition_reasons_are_camel_case() -> None:
    every = [
        *evaluated().values(),
        *evaluated(generation=4).values(),
        *evaluated(reconciled=None).values(),
        *evaluated(gateway=ROLLING).values(),
    ]
    assert all(c.reason[0].isupper() and c.reason.isalnum() for c in every)


def test_while_the_deployment_is_gone_the_status_keeps_its_size() -> None:
    """The reconcile that creates it again reads that size (not the autoscaler's minimum)."""
    previous = {
        "gateway": {"replicas": 5, "readyReplicas": 5, "updatedReplicas": 5, "ready": "5/5"}
    }
    seen = statuses.Observation(generation=3, gateway=Rollout(exists=False), consumer=DONE)
    status = statuses.build(previous, seen, T0)
    assert status["gateway"]["replicas"] == 5
    assert status["gateway"]["ready"] == "0/5"
