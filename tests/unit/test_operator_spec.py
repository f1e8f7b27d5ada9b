"""The operator's spec model against the CRD file: one schema, checked both ways.

The CRD (charts/fleetcast/files/crd-fleetbroadcasts.yaml) is the source of
truth the API server enforces; fleetcast.operator.spec mirrors it. These tests
fail when a field, type, range, enum, required flag or default differs, so the
two cannot drift apart silently.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetcast.operator import spec as crd
from fleetcast.protocol import events, rooms

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "charts" / "fleetcast" / "files" / "crd-fleetbroadcasts.yaml"
CONSTRAINTS = (
    "type",
    "enum",
    "minimum",
    "maximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "maxProperties",
)
MINIMAL: dict[str, Any] = {
    "kafka": {"bootstrapServers": "kafka:9092"},
    "redis": {"url": "redis://redis:6379/0"},
    "auth": {"jwtSecretRef": {"name": "jwt"}},
}


def crd_document() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load(CRD_FILE.read_text())
    return document


def version_schema() -> dict[str, Any]:
    (version,) = crd_document()["spec"]["versions"]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def spec_schema() -> dict[str, Any]:
    schema: dict[str, Any] = version_schema()["properties"]["spec"]
    return schema


def crd_shape(node: dict[str, Any]) -> dict[str, Any]:
    """The validation-relevant part of a CRD schema node."""
    if node.get("x-kubernetes-int-or-string"):
        return {"type": "int-or-string", "pattern": node.get("pattern")}
    if node.get("x-kubernetes-preserve-unknown-fields") and "properties" not in node:
        return {"type": "object", "free": True}
    shape = {key: node[key] for key in CONSTRAINTS if key in node}
    if "properties" in node:
        shape["properties"] = {k: crd_shape(v) for k, v in node["properties"].items()}
        shape["required"] = sorted(node.get("required", []))
    if "items" in node:
        shape["items"] = crd_shape(node["items"])
    if "additionalProperties" in node:
        shape["additionalProperties"] = crd_shape(node["additionalProperties"])
    return shape


def model_shape(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """The same for pydantic's JSON schema of the model."""
    if "$ref" in node:
        return model_shape(defs[node["$ref"].rsplit("/", 1)[-1]], defs)
    if "anyOf" in node:
        variants = [v for v in node["anyOf"] if v != {"type": "null"}]
        if {v.get("type") for v in variants} == {"integer", "string"}:
            pattern = next(v.get("pattern") for v in variants if v.get("type") == "string")
            return {"type": "int-or-string", "pattern": pattern}
        (only,) = variants
        return model_shape(only, defs)
    if node.get("type") == "object" and node.get("additionalProperties") is True:
        return {"type": "object", "free": True}
    shape = {key: node[key] for key in CONSTRAINTS if key in node}
    if "enum" in shape and "type" not in shape:
        shape["type"] = "string"
    if "properties" in node:
        shape["type"] = "object"
        shape["properties"] = {k: model_shape(v, defs) for k, v in node["properties"].items()}
        shape["required"] = sorted(node.get("required", []))
    if "items" in node:
        shape["items"] = model_shape(node["items"], defs)
    if isinstance(node.get("additionalProperties"), dict):
        shape["additionalProperties"] = model_shape(node["additionalProperties"], defs)
    return shape


def structural_defaults(value: Any, node: dict[str, Any]) -> Any:
    """Apply CRD defaults the way the API server does: unset fields, nested, recursively."""
    if isinstance(value, dict) and "properties" in node:
        result = dict(value)
        for key, child in node["properties"].items():
            if key not in result and "default" in child:
                result[key] = copy.deepcopy(child["default"])
            if key in result:
                result[key] = structural_defaults(result[key], child)
        return result
    if isinstance(value, dict) and isinstance(node.get("additionalProperties"), dict):
        return {k: structural_defaults(v, node["additionalProperties"]) for k, v in value.items()}
    if isinstance(value, list) and "items" in node:
        return [structural_defaults(item, node["items"]) for item in value]
    return value


def model_dump(raw: dict[str, Any]) -> dict[str, Any]:
    return crd.parse(raw).model_dump(mode="json", by_alias=True, exclude_none=True)


def test_model_has_every_field_type_range_and_enum_of_the_crd() -> None:
    schema = crd.FleetBroadcastSpec.model_json_schema(by_alias=True)
    assert model_shape(schema, schema.get("$defs", {})) == crd_shape(spec_schema())


@pytest.mark.parametrize(
    "raw",
    [
        MINIMAL,
        {
            **MINIMAL,
            "redis": {"secretRef": {"name": "redis"}},
            "auth": {"algorithms": ["RS256"], "publicKeySecretRef": {"name": "pk"}},
            "kafka": {
                "bootstrapServers": "k:9092",
                "security": {"protocol": "SASL_SSL", "secretRef": {"name": "sasl"}},
            },
            "gateway": {"autoscaling": {"enabled": False}, "service": {"annotations": {"a": "b"}}},
            "consumer": {"resources": {"requests": {"cpu": 1}}},
            "routing": {"overrides": {"task_updated": ["user", "org"]}},
        },
    ],
    ids=["minimal", "everything-nested"],
)
def test_model_defaults_are_the_crd_defaults(raw: dict[str, Any]) -> None:
    assert model_dump(raw) == structural_defaults(raw, spec_schema())


def test_routing_rule_lists_exactly_the_event_catalog() -> None:
    overrides = spec_schema()["properties"]["routing"]["properties"]["overrides"]
    rule = overrides["x-kubernetes-validations"][0]["rule"]
    listed = {part.strip(" '[])\n") for part in rule.split("[", 1)[1].split(",")}
    assert listed == set(events.CATALOG)
    assert set(overrides["additionalProperties"]["items"]["enum"]) == {
        k.value for k in rooms.RoomKind
    }


def test_defaults_follow_the_shared_contract() -> None:
    kafka = crd.parse(MINIMAL).kafka
    assert kafka.topics == events.DEFAULT_TOPICS
    assert kafka.dead_letter_topic == events.DEFAULT_DLQ_TOPIC


def test_crd_names_match_the_operator_constants() -> None:
    document = crd_document()
    assert document["spec"]["group"] == crd.API_GROUP
    assert document["spec"]["names"]["kind"] == crd.KIND
    assert document["spec"]["names"]["plural"] == crd.PLURAL
    assert document["metadata"]["name"] == f"{crd.PLURAL}.{crd.API_GROUP}"
    assert [v["name"] for v in document["spec"]["versions"]] == [crd.API_VERSION]


def test_crd_serves_status_columns_and_a_short_name() -> None:
    (version,) = crd_document()["spec"]["versions"]
    assert version["subresources"] == {"status": {}}
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert {"Ready", "Gateways", "Consumers", "Age"} <= set(columns)
    assert "fb" in crd_document()["spec"]["names"]["shortNames"]


def test_status_conditions_are_a_map_keyed_by_type() -> None:
    conditions = version_schema()["properties"]["status"]["properties"]["conditions"]
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert set(conditions["items"]["required"]) == {
        "type",
        "status",
        "reason",
        "message",
        "lastTransitionTime",
    }


def test_model_rejects_fields_the_crd_does_not_have() -> None:
    with pytest.raises(ValueError, match="replica"):
        crd.parse({**MINIMAL, "gateway": {"replica": 3}})
