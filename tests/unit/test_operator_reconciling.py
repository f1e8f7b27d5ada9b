"""The reconcile flow through the Kube seam, with an in-memory fake (no server).

The real API server behaviour (server-side apply, GC, defaulting) is covered
by tests/operator; this checks the operator's own decisions: what it applies
and deletes, when it writes status, how it retries a conflicting status
write, and when an owned-object event counts as drift.
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from fleetcast.operator import applying, conditions, rendering
from fleetcast.operator.kube import FLEETBROADCAST, ApiError, Manifest
from fleetcast.operator.reconciling import ApplyFailed, Reconciler

Key = tuple[str, str, str | None, str]


class FakeKube:
    """Objects in a dict; apply replaces the object (good enough for these decisions)."""

    def __init__(self) -> None:
        self.objects: dict[Key, Manifest] = {}
        self.applied: list[tuple[str, str, str]] = []
        self.deleted: list[str] = []
        self.patched: list[tuple[str, str, str]] = []
        self.events: list[Manifest] = []
        self.conflicts = 0
        self.version = 0

    def put(self, manifest: Manifest) -> Manifest:
        self.version += 1
        meta = manifest.setdefault("metadata", {})
        meta["resourceVersion"] = str(self.version)
        meta.setdefault("uid", f"uid-{self.version}")
        meta.setdefault("generation", 1)
        self.objects[self.key(manifest)] = manifest
        return manifest

    @staticmethod
    def key(manifest: Manifest) -> Key:
        meta = manifest["metadata"]
        return (manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])

    def apply(self, manifest: Manifest, *, manager: str) -> Manifest:
        self.applied.append((manager, manifest["kind"], manifest["metadata"]["name"]))
        stored = self.objects.get(self.key(manifest))
        if stored is not None and _content(stored) == _content(manifest):
            return copy.deepcopy(stored)  # like the API server: an unchanged apply writes nothing
        fresh = copy.deepcopy(manifest)
        if stored is not None:
            fresh["metadata"]["uid"] = stored["metadata"]["uid"]
            kept = (stored.get("spec") or {}).get("replicas")
            if "spec" in fresh and "replicas" not in fresh["spec"] and kept is not None:
                fresh["spec"]["replicas"] = kept  # another manager (the hand-over) owns it
        return self.put(fresh)

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Manifest | None:
        found = self.objects.get((api_version, kind, namespace, name))
        return copy.deepcopy(found) if found else None

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None, selector: str = ""
    ) -> list[Manifest]:
        wanted = dict(term.split("=") for term in selector.split(",") if term)
        return [
            copy.deepcopy(v)
            for (a, k, n, _), v in self.objects.items()
            if (a, k) == (api_version, kind)
            and wanted.items() <= (v["metadata"].get("labels") or {}).items()
        ]

    def delete(
        self,
        api_version: str,
        kind: str,
        namespace: str | None,
        name: str,
        *,
        uid: str | None = None,
        orphan: bool = False,
    ) -> bool:
        self.deleted.append(f"{kind}/{name}")
        return self.objects.pop((api_version, kind, namespace, name), None) is not None

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
        current = self.objects[(api_version, kind, namespace, name)]
        version = body.get("metadata", {}).get("resourceVersion")
        if version is not None and version != current["metadata"]["resourceVersion"]:
            raise ApiError(409, "the object has been modified")
        self.patched.append((manager, kind, name))
        merged = copy.deepcopy(current)
        for section, value in body.items():
            if isinstance(value, dict):
                merged.setdefault(section, {}).update(copy.deepcopy(value))
        return self.put(merged)

    def create(self, manifest: Manifest) -> Manifest | None:
        self.events.append(manifest)
        return manifest

    def patch_status(self, namespace: str, name: str, status: Manifest, version: str) -> Manifest:
        current = self.objects[(*FLEETBROADCAST, namespace, name)]
        if self.conflicts:
            self.conflicts -= 1
            self.put(current)  # someone else wrote in between
        if current["metadata"]["resourceVersion"] != version:
            raise ApiError(409, "the object has been modified")
        current["status"] = copy.deepcopy(status)
        return self.put(current)


def _content(manifest: Manifest) -> Manifest:
    """What an apply of ``manifest`` sets (replicas left alone when an autoscaler owns them)."""
    meta = {
        k: v
        for k, v in manifest["metadata"].items()
        if k not in ("resourceVersion", "uid", "generation", "managedFields")
    }
    spec = {k: v for k, v in (manifest.get("spec") or {}).items() if k != "replicas"}
    return {**manifest, "metadata": meta, "spec": spec, "status": None}


@pytest.fixture
def kube() -> FakeKube:
    return FakeKube()


@pytest.fixture
def reconciler(kube: FakeKube) -> Reconciler:
    return Reconciler(kube, clock=lambda: datetime(2026, 11, 25, 18, 0, tzinfo=UTC))


def fleetbroadcast(kube: FakeKube, **spec: Any) -> Manifest:
    body: Manifest = {
        "apiVersion": FLEETBROADCAST[0],
        "kind": FLEETBROADCAST[1],
        "metadata": {"name": "fb", "namespace": "ns", "generation": 1},
        "spec": {
            "kafka": {"bootstrapServers": "k:9092"},
            "redis": {"url": "redis://r:6379/0"},
            "auth": {"jwtSecretRef": {"name": "jwt"}},
            **spec,
        },
    }
    existing = kube.objects.get((*FLEETBROADCAST, "ns", "fb"))
    if existing is not None:  # an update keeps the object's uid and status
        body["metadata"]["uid"] = existing["metadata"]["uid"]
        body["status"] = existing.get("status")
    return kube.put(body)


def secret(kube: FakeKube) -> None:
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": "jwt", "namespace": "ns"},
            "data": {"secret": "eA=="},
        }
    )


def status_of(kube: FakeKube) -> dict[str, Any]:
    found = kube.get(*FLEETBROADCAST, "ns", "fb")
    assert found is not None
    status: dict[str, Any] = found["status"]
    return status


def condition(kube: FakeKube, kind: str) -> dict[str, Any]:
    return next(c for c in status_of(kube)["conditions"] if c["type"] == kind)


def test_reconcile_applies_everything_with_the_operator_field_manager(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    secret(kube)
    reconciled = reconciler.reconcile(fleetbroadcast(kube))
    assert reconciled.is_true
    ours = {(kind, name) for manager, kind, name in kube.applied if manager == rendering.MANAGER}
    assert {name for kind, name in ours if kind == "Deployment"} == {"fb-gateway", "fb-consumer"}
    assert ("HorizontalPodAutoscaler", "fb-gateway") in ours
    # The autoscaled gateway's start count is handed over at once, nothing else.
    others = {(m, k, n) for m, k, n in kube.applied if m != rendering.MANAGER}
    assert others == {(applying.HANDOVER_MANAGER, "Deployment", "fb-gateway")}
    assert condition(kube, conditions.RECONCILED)["reason"] == "Applied"
    assert status_of(kube)["observedGeneration"] == 1


def test_a_missing_secret_is_degraded_not_an_exception(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    reconciled = reconciler.reconcile(fleetbroadcast(kube))
    assert (reconciled.status, reconciled.reason) == ("False", "SecretMissing")
    assert condition(kube, conditions.DEGRADED)["reason"] == "SecretMissing"
    assert condition(kube, conditions.READY)["reason"] == "SecretMissing"
    assert [e["reason"] for e in kube.events if e["type"] == "Warning"] == [
        "SecretMissing",
        "SecretMissing",
    ]


def test_an_invalid_spec_is_reported_in_the_status(kube: FakeKube, reconciler: Reconciler) -> None:
    body = fleetbroadcast(kube, gateway={"replicas": -1})
    assert reconciler.reconcile(body).reason == "InvalidSpec"
    assert condition(kube, conditions.RECONCILED)["status"] == "False"
    assert kube.applied == []


def test_status_writes_retry_on_conflict_and_skip_when_unchanged(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    secret(kube)
    body = fleetbroadcast(kube)
    kube.conflicts = 2
    reconciler.reconcile(body)
    assert condition(kube, conditions.RECONCILED)["status"] == "True"
    version = kube.objects[(*FLEETBROADCAST, "ns", "fb")]["metadata"]["resourceVersion"]
    reconciler.refresh(body)
    assert kube.objects[(*FLEETBROADCAST, "ns", "fb")]["metadata"]["resourceVersion"] == version


def test_a_new_autoscaled_gateway_starts_at_the_hpa_minimum(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    secret(kube)
    reconciler.reconcile(fleetbroadcast(kube, gateway={"autoscaling": {"minReplicas": 3}}))
    created = kube.get("apps/v1", "Deployment", "ns", "fb-gateway")
    assert created is not None
    assert created["spec"]["replicas"] == 3


def test_turning_autoscaling_off_deletes_the_hpa(kube: FakeKube, reconciler: Reconciler) -> None:
    secret(kube)
    reconciler.reconcile(fleetbroadcast(kube))
    assert kube.get("autoscaling/v2", "HorizontalPodAutoscaler", "ns", "fb-gateway") is not None
    reconciler.reconcile(fleetbroadcast(kube, gateway={"autoscaling": {"enabled": False}}))
    assert kube.deleted == ["HorizontalPodAutoscaler/fb-gateway"]


def test_an_obsolete_object_someone_else_owns_is_not_deleted(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    secret(kube)
    kube.put(
        {
            "apiVersion": "autoscaling/v2",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "fb-gateway", "namespace": "ns"},
        }
    )
    reconciler.reconcile(fleetbroadcast(kube, gateway={"autoscaling": {"enabled": False}}))
    assert kube.deleted == []


def test_an_object_it_did_not_create_is_a_conflict_and_the_rest_is_applied(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    secret(kube)
    kube.put(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "fb-gateway-config", "namespace": "ns"},
            "data": {"theirs": "yes"},
        }
    )
    reconciled = reconciler.reconcile(fleetbroadcast(kube))
    assert (reconciled.status, reconciled.reason) == ("False", "Conflict")
    assert "ConfigMap fb-gateway-config" in reconciled.message
    theirs = kube.get("v1", "ConfigMap", "ns", "fb-gateway-config")
    assert theirs is not None
    assert theirs["data"] == {"theirs": "yes"}
    assert ("fleetcast-operator", "ConfigMap", "fb-gateway-config") not in kube.applied
    assert ("fleetcast-operator", "Deployment", "fb-gateway") in kube.applied
    assert condition(kube, conditions.DEGRADED)["reason"] == "Conflict"


def test_a_refused_object_does_not_stop_the_others(kube: FakeKube, reconciler: Reconciler) -> None:
    secret(kube)
    refuse = kube.apply

    def apply(manifest: Manifest, *, manager: str) -> Manifest:
        if manifest["kind"] == "Service":
            raise ApiError(422, "Service is invalid: spec.ports[1].name: Duplicate value")
        return refuse(manifest, manager=manager)

    kube.apply = apply  # type: ignore[method-assign]
    with pytest.raises(ApplyFailed):
        reconciler.reconcile(fleetbroadcast(kube))
    kinds = {kind for _, kind, _ in kube.applied}
    assert {"Deployment", "HorizontalPodAutoscaler", "PodDisruptionBudget"} <= kinds
    found = condition(kube, conditions.RECONCILED)
    assert found["reason"] == "ApplyFailed"
    assert "Service fb-gateway: Service is invalid" in found["message"]


def test_fields_another_manager_set_are_taken_back_before_the_apply(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    secret(kube)
    reconciler.reconcile(fleetbroadcast(kube))
    stored = kube.objects[("v1", "Service", "ns", "fb-gateway")]
    stored["metadata"]["managedFields"] = [
        {"manager": rendering.MANAGER, "operation": "Apply", "fieldsV1": {"f:spec": {}}},
        {
            "manager": "kubectl-edit",
            "operation": "Update",
            "fieldsV1": {"f:spec": {"f:ports": {'k:{"port":81,"protocol":"TCP"}': {".": {}}}}},
        },
    ]
    reconciler.on_owned_event("MODIFIED", copy.deepcopy(stored))
    assert ("fleetcast-operator-reclaim", "Service", "fb-gateway") in kube.patched
    fields = kube.objects[("v1", "Service", "ns", "fb-gateway")]["metadata"]["managedFields"]
    assert [entry["manager"] for entry in fields] == [rendering.MANAGER]
    repaired = [e["message"] for e in kube.events if e["reason"] == "DriftRepaired"]
    taken = "kubectl-edit: .spec.ports[port=81,protocol=TCP]"
    assert repaired == [f"Service fb-gateway: took back fields set by {taken}"]


def test_replicas_are_handed_over_before_the_hpa_takes_them(kube: FakeKube) -> None:
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "fb-gateway",
            "namespace": "ns",
            "managedFields": [
                {
                    "manager": rendering.MANAGER,
                    "operation": "Apply",
                    "fieldsV1": {"f:spec": {"f:replicas": {}}},
                }
            ],
        },
        "spec": {"replicas": 6},
    }
    kube.put(live)
    applying.hand_over_replicas(kube, live)
    assert kube.applied == [(applying.HANDOVER_MANAGER, "Deployment", "fb-gateway")]
    assert kube.objects[("apps/v1", "Deployment", "ns", "fb-gateway")]["spec"] == {"replicas": 6}


def test_owned_object_events_repair_drift_only_when_there_is_some(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    secret(kube)
    reconciler.reconcile(fleetbroadcast(kube))
    service = kube.get("v1", "Service", "ns", "fb-gateway")
    assert service is not None
    kube.applied.clear()
    reconciler.on_owned_event("MODIFIED", service)
    assert kube.applied == []
    service["spec"]["sessionAffinity"] = "None"
    kube.put(copy.deepcopy(service))  # the edit, as the API server stores it
    reconciler.on_owned_event("MODIFIED", service)
    assert ("fleetcast-operator", "Service", "fb-gateway") in kube.applied
    assert any(e["reason"] == "DriftRepaired" for e in kube.events)
    kube.applied.clear()
    reconciler.on_owned_event("DELETED", service)
    assert ("fleetcast-operator", "Service", "fb-gateway") in kube.applied


def test_events_of_objects_of_another_owner_are_ignored(
    kube: FakeKube, reconciler: Reconciler
) -> None:
    secret(kube)
    reconciler.reconcile(fleetbroadcast(kube))
    service = kube.get("v1", "Service", "ns", "fb-gateway")
    assert service is not None
    service["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    kube.applied.clear()
    reconciler.on_owned_event("DELETED", service)
    assert kube.applied == []
