"""Taking fields back from other managers: fieldsV1 set arithmetic and what is left alone."""

from __future__ import annotations

from typing import Any

from fleetcast.operator import claiming

PORT_81 = 'k:{"port":81,"protocol":"TCP"}'
GATEWAY = 'k:{"name":"gateway"}'


def entry(
    manager: str, fields: dict[str, Any], operation: str = "Update", **extra: Any
) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": operation,
        "apiVersion": "v1",
        "fieldsV1": fields,
        **extra,
    }


def live(*entries: dict[str, Any], replicas: bool = True) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"managedFields": list(entries)},
    }


def test_fields_v1_trees_and_path_sets_convert_both_ways() -> None:
    tree: dict[str, Any] = {"f:spec": {"f:ports": {PORT_81: {".": {}, "f:port": {}}}, "f:type": {}}}
    paths = claiming.paths(tree)
    assert paths == {
        ("f:spec", "f:ports", PORT_81, "."),
        ("f:spec", "f:ports", PORT_81, "f:port"),
        ("f:spec", "f:type"),
    }
    assert claiming.tree(paths) == tree


def test_hand_edits_are_foreign_but_metadata_subresources_and_restarts_are_not() -> None:
    edits = {
        "f:metadata": {"f:annotations": {"f:note": {}}},
        "f:spec": {
            "f:template": {
                "f:metadata": {"f:annotations": {"f:kubectl.kubernetes.io/restartedAt": {}}},
                "f:spec": {"f:hostNetwork": {}, "f:containers": {GATEWAY: {"f:image": {}}}},
            }
        },
    }
    found = claiming.foreign_fields(
        live(
            entry("fleetcast-operator", {"f:spec": {"f:replicas": {}}}, "Apply"),
            entry("kubectl-edit", edits),
            entry("kube-controller-manager", {"f:spec": {"f:replicas": {}}}, subresource="scale"),
        ),
        ["fleetcast-operator"],
        claiming.ALWAYS_PROTECTED,
    )
    (edit,) = found
    assert edit.manager == "kubectl-edit"
    assert edit.owned == {
        ("f:spec", "f:template", "f:spec", "f:hostNetwork"),
        ("f:spec", "f:template", "f:spec", "f:containers", GATEWAY, "f:image"),
    }
    pod = ".spec.template.spec"
    described = f"kubectl-edit: {pod}.containers[name=gateway].image, {pod}.hostNetwork"
    assert edit.describe() == described


def test_replicas_stay_with_the_autoscaler_when_the_manifest_names_none() -> None:
    scaled = {"kind": "Deployment", "spec": {"template": {}}}
    fixed = {"kind": "Deployment", "spec": {"replicas": 2}}
    assert claiming.REPLICAS in claiming.protected_paths(scaled)
    assert claiming.REPLICAS not in claiming.protected_paths(fixed)


def test_reclaimed_fields_move_to_the_operators_apply_entry() -> None:
    object_ = live(
        entry("fleetcast-operator", {"f:spec": {"f:type": {}}}, "Apply"),
        entry(
            "kubectl-patch",
            {"f:spec": {"f:ports": {PORT_81: {".": {}}}}, "f:metadata": {"f:labels": {"f:x": {}}}},
        ),
        entry("kube-controller-manager", {"f:status": {}}, subresource="status"),
    )
    foreign = claiming.foreign_fields(object_, ["fleetcast-operator"], claiming.ALWAYS_PROTECTED)
    fields = claiming.reclaimed(object_, "fleetcast-operator", foreign, "2026-11-25T18:00:00Z")
    ours, theirs, status = fields
    assert ours["fieldsV1"] == {"f:spec": {"f:ports": {PORT_81: {".": {}}}, "f:type": {}}}
    assert theirs["manager"] == "kubectl-patch"
    assert theirs["fieldsV1"] == {"f:metadata": {"f:labels": {"f:x": {}}}}  # its label stays
    assert status["subresource"] == "status"


def test_an_object_without_an_apply_entry_gets_one() -> None:
    object_ = live(entry("kubectl-create", {"f:spec": {"f:type": {}}}))
    foreign = claiming.foreign_fields(object_, ["fleetcast-operator"], claiming.ALWAYS_PROTECTED)
    (ours,) = claiming.reclaimed(object_, "fleetcast-operator", foreign, "2026-11-25T18:00:00Z")
    assert (ours["manager"], ours["operation"]) == ("fleetcast-operator", "Apply")
    assert ours["fieldsV1"] == {"f:spec": {"f:type": {}}}
