"""The operator's other pure pieces: drift detection, peering leadership, Secret checks, Events."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from fleetcast.operator import drift, handlers, leadership, reporting, secretrefs
from fleetcast.operator import spec as crd
from fleetcast.operator.settings import Settings

NOW = datetime(2026, 11, 25, 18, 0, 0, tzinfo=UTC)


def test_live_objects_may_carry_more_than_the_manifest() -> None:
    desired = {"spec": {"replicas": 2, "ports": [{"port": 80}]}}
    live = {
        "spec": {"replicas": 2, "ports": [{"port": 80, "nodePort": 30001}], "clusterIP": "10.0.0.1"}
    }
    assert drift.differences(desired, live) == []


def test_changed_missing_and_shortened_values_are_drift() -> None:
    desired = {
        "metadata": {"labels": {"a": "1"}},
        "spec": {"replicas": 2, "env": [{"name": "X"}, {"name": "Y"}]},
    }
    live = {"metadata": {"labels": {}}, "spec": {"replicas": 5, "env": [{"name": "X"}]}}
    assert drift.differences(desired, live) == [".metadata.labels.a", ".spec.replicas", ".spec.env"]


def test_quantities_compare_by_value() -> None:
    assert (
        drift.differences({"cpu": "1000m", "memory": 1073741824}, {"cpu": "1", "memory": "1Gi"})
        == []
    )
    assert drift.differences({"cpu": "500m"}, {"cpu": "1"}) == [".cpu"]
    assert drift.differences({"enabled": True}, {"enabled": 1}) == [".enabled"]


def peer(priority: int, seen: datetime, lifetime: int = 60) -> dict[str, Any]:
    return {"priority": priority, "lifetime": lifetime, "lastseen": seen.isoformat()}


def test_the_highest_live_priority_leads() -> None:
    peers = {"me": peer(10, NOW), "other": peer(5, NOW)}
    assert leadership.is_leader(peers, "me", 10, NOW)
    assert not leadership.is_leader(peers, "other", 5, NOW)


def test_equal_priorities_pause_both_as_kopf_does() -> None:
    peers = {"me": peer(7, NOW), "twin": peer(7, NOW)}
    assert not leadership.is_leader(peers, "me", 7, NOW)


def test_dead_peers_and_missing_self_are_handled() -> None:
    stale = NOW - timedelta(seconds=120)
    assert leadership.is_leader({"me": peer(1, NOW), "gone": peer(99, stale)}, "me", 1, NOW)
    assert not leadership.is_leader({"other": peer(1, NOW)}, "me", 5, NOW)
    assert not leadership.is_leader({"me": peer(5, stale)}, "me", 5, NOW)


SPEC = crd.parse(
    {
        "kafka": {
            "bootstrapServers": "k:9092",
            "security": {"protocol": "SASL_SSL", "secretRef": {"name": "sasl"}},
        },
        "redis": {"secretRef": {"name": "redis"}},
        "auth": {"jwtSecretRef": {"name": "jwt"}},
    }
)


def test_every_secret_key_the_pods_read_is_checked() -> None:
    refs = secretrefs.referenced(SPEC)
    assert [(r.name, r.keys) for r in refs] == [
        ("jwt", ("secret",)),
        ("redis", ("url",)),
        ("sasl", ("username", "password")),
    ]


def test_missing_secrets_and_keys_make_a_degraded_condition() -> None:
    store = {"jwt": {"data": {"secret": "eA=="}}, "sasl": {"data": {"username": "dQ=="}}}
    found = secretrefs.problems(secretrefs.referenced(SPEC), store.get)
    condition = secretrefs.degraded(found, 2)
    assert (condition.status, condition.reason) == ("True", secretrefs.SECRET_MISSING)
    assert "'redis' (redis.secretRef) does not exist" in condition.message
    assert "has no key 'password'" in condition.message
    healthy = secretrefs.degraded([], 2)
    assert (healthy.status, healthy.reason) == ("False", secretrefs.HEALTHY)


def test_events_announce_transitions_of_ready_and_degraded_only() -> None:
    before = [
        {"type": "Ready", "status": "False", "reason": "Progressing"},
        {"type": "Reconciled", "status": "True", "reason": "Applied"},
    ]
    after = [
        {"type": "Ready", "status": "True", "reason": "Available", "message": "2/2"},
        {
            "type": "Reconciled",
            "status": "True",
            "reason": "Applied",
            "message": "generation 3 applied",
        },
        {"type": "Degraded", "status": "True", "reason": "SecretMissing", "message": "no jwt"},
    ]
    assert reporting.transitions(before, after) == [
        ("Normal", "Available", "Ready=True: 2/2"),
        ("Warning", "SecretMissing", "Degraded=True: no jwt"),
    ]
    assert reporting.transitions(after, after) == []


def test_an_event_names_its_fleetbroadcast() -> None:
    owner = {
        "apiVersion": "radiofleet.io/v1alpha1",
        "kind": "FleetBroadcast",
        "metadata": {"name": "fb", "namespace": "ns", "uid": "u1"},
    }
    event = reporting.event(owner, "Normal", "Available", "ready", NOW)
    assert event["involvedObject"]["uid"] == "u1"
    assert event["metadata"]["namespace"] == "ns"
    assert event["metadata"]["name"].startswith("fb.")
    assert event["lastTimestamp"] == "2026-11-25T18:00:00Z"


def test_settings_split_namespaces_and_default_to_cluster_wide(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("FLEETCAST_OPERATOR_NAMESPACES", "team-a, team-b,")
    assert Settings().namespaces == ("team-a", "team-b")
    assert not Settings().clusterwide
    monkeypatch.setenv("FLEETCAST_OPERATOR_NAMESPACES", "")
    assert Settings().clusterwide


def test_kopf_object_lines_name_their_object_and_owned_event_noise_is_dropped() -> None:
    logs = handlers.ObjectLogs()

    def record(message: str) -> logging.LogRecord:
        made = logging.LogRecord("kopf.objects", logging.INFO, __file__, 1, message, None, None)
        made.k8s_ref = {"namespace": "ns", "name": "fb"}
        return made

    assert not logs.filter(record("Handler 'owned-deployments' succeeded."))
    failed = record("Handler 'reconcile' failed temporarily: 422")
    assert logs.filter(failed)
    assert failed.getMessage() == "[ns/fb] Handler 'reconcile' failed temporarily: 422"
