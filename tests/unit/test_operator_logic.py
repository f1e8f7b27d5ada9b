"""The operator's other small pieces: drift, the Lease election, Secret checks, Events, settings."""

from __future__ import annotations

import copy
import logging
from datetime import UTC, datetime

import pytest

from fleetcast.operator import drift, election, handlers, reporting, secretrefs
from fleetcast.operator import spec as crd
from fleetcast.operator.kube import ApiError, Manifest
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


def test_missing_secrets_and_keys_fail_the_reconcile() -> None:
    store = {"jwt": {"data": {"secret": "eA=="}}, "sasl": {"data": {"username": "dQ=="}}}
    found = secretrefs.problems(secretrefs.referenced(SPEC), store.get)
    condition = secretrefs.failure(found, 2)
    assert condition is not None
    assert (condition.type, condition.status) == ("Reconciled", "False")
    assert condition.reason == secretrefs.SECRET_MISSING
    assert "'redis' (redis.secretRef) does not exist" in condition.message
    assert "has no key 'password'" in condition.message
    assert secretrefs.failure([], 2) is None


def test_secret_digests_change_with_the_value_and_never_show_it() -> None:
    refs = secretrefs.referenced(SPEC)
    store = {"jwt": {"data": {"secret": "c2VjcmV0LW9uZQ=="}}, "redis": {"data": {"url": "eA=="}}}
    first = secretrefs.digests(refs, store.get)
    assert set(first) == {("jwt", "secret"), ("redis", "url")}  # sasl is missing: no digest
    assert "c2VjcmV0LW9uZQ==" not in str(first)
    store["jwt"] = {"data": {"secret": "c2VjcmV0LXR3bw=="}}
    second = secretrefs.digests(refs, store.get)
    assert second[("jwt", "secret")] != first[("jwt", "secret")]
    assert second[("redis", "url")] == first[("redis", "url")]


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
    monkeypatch.setenv("FLEETCAST_OPERATOR_LEASE_NAMESPACE", "fleetcast")
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


def test_leader_election_needs_the_lease_namespace(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLEETCAST_OPERATOR_LEASE_NAMESPACE", raising=False)
    with pytest.raises(ValueError, match="LEASE_NAMESPACE is required"):
        Settings()
    monkeypatch.setenv("FLEETCAST_OPERATOR_LEADER_ELECTION", "false")
    assert not Settings().leader_election


class LeaseStore:
    """One Lease, with the API server's resourceVersion checks (create: 409 if it exists)."""

    def __init__(self) -> None:
        self.lease: Manifest | None = None
        self.stale: Manifest | None = None
        self.version = 0

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Manifest | None:
        if self.stale is not None:
            found, self.stale = self.stale, None
            return found
        return copy.deepcopy(self.lease)

    def create(self, manifest: Manifest) -> Manifest | None:
        if self.lease is not None:
            return None
        self.lease = copy.deepcopy(manifest)
        return self._bump()

    def patch(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        body: Manifest,
        *,
        manager: str,
    ) -> Manifest:
        assert self.lease is not None
        if body["metadata"]["resourceVersion"] != self.lease["metadata"]["resourceVersion"]:
            raise ApiError(409, "the object has been modified")
        self.lease["spec"].update(body["spec"])
        return self._bump()

    def _bump(self) -> Manifest:
        assert self.lease is not None
        self.version += 1
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)


def candidate(store: LeaseStore, identity: str, clock: list[float]) -> election.Elector:
    return election.Elector(
        store,  # type: ignore[arg-type]
        "fleetcast",
        "fleetcast-operator",
        identity,
        lease_seconds=15,
        clock=lambda: clock[0],
    )


def test_one_candidate_leads_and_the_other_waits_a_whole_lease_after_a_crash() -> None:
    store, clock = LeaseStore(), [100.0]
    first, second = candidate(store, "a", clock), candidate(store, "b", clock)
    assert first.try_once()
    assert not second.try_once()  # first sight of a's record
    clock[0] += 10
    assert first.try_once()  # a renews: b's count starts again
    assert not second.try_once()
    clock[0] += 14
    assert not second.try_once()  # 14 s without a renewal: not yet
    clock[0] += 2
    assert second.try_once()  # 16 s > 15 s: a is gone
    assert election.holder_of(store.lease) == "b"
    assert store.lease is not None
    assert store.lease["spec"]["leaseTransitions"] == 1
    assert not first.try_once()


def test_a_released_lease_is_taken_at_once() -> None:
    store, clock = LeaseStore(), [0.0]
    first, second = candidate(store, "a", clock), candidate(store, "b", clock)
    assert first.try_once()
    assert not second.try_once()
    first.release()
    assert election.holder_of(store.lease) == ""
    assert second.try_once()
    first.release()  # not the holder any more: leaves b's Lease alone
    assert election.holder_of(store.lease) == "b"


def test_two_candidates_racing_for_a_free_lease_cannot_both_win() -> None:
    store, clock = LeaseStore(), [0.0]
    first, second = candidate(store, "a", clock), candidate(store, "b", clock)
    assert first.try_once()
    first.release()
    free = store.get("", "", None, "")  # b reads the free Lease...
    assert first.try_once()  # ...a takes it first...
    store.stale = free
    assert not second.try_once()  # ...and b's write, at the old version, is refused.
    assert election.holder_of(store.lease) == "a"


def test_zero_values_the_api_server_omits_are_not_drift() -> None:
    desired = {"spec": {"minReadySeconds": 0, "paused": False, "tolerations": [], "replicas": 2}}
    assert drift.differences(desired, {"spec": {"replicas": 2}}) == []
    assert drift.differences({"spec": {"minReadySeconds": 10}}, {"spec": {}}) == [
        ".spec.minReadySeconds"
    ]
