"""Status bookkeeping: Ready roll-up, availability, lastTransitionTime discipline."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fleetcast.operator import conditions
from fleetcast.operator.conditions import Condition, Rollout

T0 = datetime(2026, 11, 25, 18, 0, 0, tzinfo=UTC)
APPLIED = Condition(conditions.RECONCILED, "True", "Applied", "generation 3 applied", 3)
HEALTHY = Condition(conditions.DEGRADED, "False", "Healthy", "ok", 3)
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


def deployment(**status: Any) -> dict[str, Any]:
    return {"metadata": {"generation": 4}, "spec": {"replicas": 3}, "status": status}


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
    assert not Rollout.of(
        deployment(observedGeneration=4, replicas=3, updatedReplicas=2, availableReplicas=3)
    ).complete
    assert not Rollout.of(None).exists


def test_ready_when_applied_healthy_and_rolled_out() -> None:
    ready = conditions.roll_up(3, APPLIED, HEALTHY, DONE, DONE)
    assert (ready.status, ready.reason) == ("True", "Available")


def test_degraded_wins_and_lends_its_reason() -> None:
    missing = Condition(
        conditions.DEGRADED, "True", "SecretMissing", "Secret 'jwt' does not exist", 3
    )
    ready = conditions.roll_up(3, APPLIED, missing, DONE, DONE)
    assert (ready.status, ready.reason, ready.message) == (
        "False",
        "SecretMissing",
        missing.message,
    )


def test_progressing_while_a_new_generation_is_unapplied_or_rolling() -> None:
    assert conditions.roll_up(4, APPLIED, HEALTHY, DONE, DONE).reason == conditions.PROGRESSING
    rolling = Rollout(
        exists=True,
        desired=2,
        total=3,
        ready=2,
        updated=1,
        available=2,
        observed=True,
        available_condition=True,
    )
    ready = conditions.roll_up(3, APPLIED, HEALTHY, rolling, DONE)
    assert (ready.status, ready.reason) == ("False", conditions.PROGRESSING)
    assert "gateway" in ready.message


def test_missing_or_unavailable_components_are_named() -> None:
    assert (
        conditions.roll_up(3, APPLIED, HEALTHY, DONE, Rollout(exists=False)).reason
        == "ConsumerMissing"
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
    assert conditions.roll_up(3, APPLIED, HEALTHY, down, DONE).reason == "GatewayUnavailable"
    failed = Condition(conditions.RECONCILED, "False", "ApplyFailed", "422: bad", 3)
    assert conditions.roll_up(3, failed, HEALTHY, DONE, DONE).reason == "ApplyFailed"


def test_availability_of_one_component() -> None:
    available = conditions.availability(conditions.GATEWAY_AVAILABLE, "gateway", DONE, 3)
    assert (available.status, available.reason) == ("True", "Available")
    missing = conditions.availability(
        conditions.CONSUMER_AVAILABLE, "consumer", Rollout(exists=False), 3
    )
    assert (missing.status, missing.reason) == ("False", "DeploymentMissing")


def test_last_transition_time_moves_only_when_status_changes() -> None:
    first = conditions.merge([], [HEALTHY], T0)
    assert first[0]["lastTransitionTime"] == "2026-11-25T18:00:00Z"
    reworded = Condition(conditions.DEGRADED, "False", "Healthy", "still ok", 4)
    later = conditions.merge(first, [reworded], T0 + timedelta(minutes=5))
    assert later[0]["lastTransitionTime"] == "2026-11-25T18:00:00Z"
    assert (later[0]["message"], later[0]["observedGeneration"]) == ("still ok", 4)
    flipped = Condition(conditions.DEGRADED, "True", "SecretMissing", "gone", 4)
    last = conditions.merge(later, [flipped], T0 + timedelta(minutes=9))
    assert last[0]["lastTransitionTime"] == "2026-11-25T18:09:00Z"


def test_build_status_keeps_the_stored_reconcile_outcome() -> None:
    status = conditions.build_status(
        generation=3,
        previous={},
        reconciled=APPLIED,
        degraded=HEALTHY,
        gateway=DONE,
        consumer=DONE,
        now=T0,
    )
    assert status["observedGeneration"] == 3
    assert [c["type"] for c in status["conditions"]] == [
        conditions.READY,
        conditions.RECONCILED,
        conditions.DEGRADED,
        conditions.GATEWAY_AVAILABLE,
        conditions.CONSUMER_AVAILABLE,
    ]
    assert status["gateway"]["ready"] == "2/2"
    again = conditions.build_status(
        generation=3,
        previous=status,
        reconciled=None,
        degraded=None,
        gateway=DONE,
        consumer=DONE,
        now=T0 + timedelta(hours=1),
    )
    assert again == status


def test_condition_reasons_are_camel_case() -> None:
    reasons = {
        conditions.roll_up(3, APPLIED, HEALTHY, DONE, DONE).reason,
        conditions.roll_up(4, APPLIED, HEALTHY, DONE, DONE).reason,
        conditions.roll_up(3, None, None, DONE, DONE).reason,
        conditions.availability("X", "gateway", Rollout(exists=True, desired=1), 1).reason,
    }
    assert all(reason[0].isupper() and reason.isalnum() for reason in reasons)
