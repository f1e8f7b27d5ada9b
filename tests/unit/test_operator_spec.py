"""The CRD is generated from the operator's spec model: fresh, structural, same defaults.

fleetcast.operator.crdschema writes charts/fleetcast/files/crd-fleetbroadcasts.yaml
from fleetcast.operator.spec (and statusmodel); these tests fail when the file
is stale, when the generated schema is not one the API server accepts as
structural, or when the defaults the API server would apply differ from the
model's.
"""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetcast.operator import crdschema, specbase, statusmodel
from fleetcast.operator import spec as crd
from fleetcast.protocol import events, rooms

REPO = Path(__file__).resolve().parents[2]
CRD_FILE = REPO / "charts" / "fleetcast" / "files" / "crd-fleetbroadcasts.yaml"
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


def test_the_crd_file_is_generated_from_the_models() -> None:
    assert CRD_FILE.read_text() == crdschema.render(), "run `make manifests`"
    done = subprocess.run(
        [sys.executable, REPO / "scripts/crd.py", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def walk(node: dict[str, Any], where: str = "") -> list[tuple[str, dict[str, Any]]]:
    found = [(where, node)]
    for key, child in node.get("properties", {}).items():
        found += walk(child, f"{where}.{key}")
    for key in ("items", "additionalProperties"):
        if isinstance(node.get(key), dict):
            found += walk(node[key], f"{where}[{key}]")
    return found


def test_the_generated_schema_is_structural() -> None:
    """What the API server refuses in a CRD: no type, $ref, nullable unions, titles."""
    for where, node in walk(version_schema()):
        assert not {"$ref", "$defs", "title", "allOf", "oneOf"} & set(node), where
        if "anyOf" in node:
            assert node.get("x-kubernetes-int-or-string") is True, where
            continue
        free = node.get("x-kubernetes-preserve-unknown-fields")
        assert "type" in node or free, where


def test_a_quantity_is_int_or_string_with_the_pattern() -> None:
    requests = spec_schema()["properties"]["gateway"]["properties"]["resources"]["properties"][
        "requests"
    ]
    quantity = requests["additionalProperties"]
    assert quantity["x-kubernetes-int-or-string"] is True
    assert quantity["pattern"] == specbase.QUANTITY_PATTERN


def test_descriptions_come_from_the_docstrings() -> None:
    kafka = spec_schema()["properties"]["kafka"]
    assert kafka["description"] == "Where the domain services write the events."
    assert kafka["properties"]["bootstrapServers"]["description"].startswith("Bootstrap servers")


def test_status_model_accepts_what_the_schema_declares() -> None:
    conditions = version_schema()["properties"]["status"]["properties"]["conditions"]
    assert statusmodel.StatusCondition.model_fields["type"].is_required()
    assert conditions["items"]["properties"]["lastTransitionTime"]["format"] == "date-time"


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
