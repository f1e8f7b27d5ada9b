"""scripts/values_schema.py: values.yaml's comments and defaults become the schema."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "values_schema", ROOT / "scripts/values_schema.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


values_schema = _load()

DOCUMENTED = """\
# Header prose, separated by a blank line, describes no key.

# The image.
image:
  # Where it comes from.
  repository: fleetcast
  # How often to pull.
  # @schema {"enum": ["Always", "IfNotPresent"]}
  pullPolicy: IfNotPresent
# Free-form resources.
# @schema {"x-opaque": true}
resources:
  limits:
    memory: 1Gi
# A spec checked elsewhere.
# @schema {"x-open": true}
spec:
  # Replicas.
  replicas: 2
  # Nested, still open.
  nested:
    # A flag.
    enabled: true
# Extra labels.
# @schema {"additionalProperties": {"type": "string"}}
labels: {}
# Names.
names: [a, b]
"""


def test_descriptions_types_and_annotations() -> None:
    schema = json.loads(values_schema.render(DOCUMENTED))
    props = schema["properties"]
    assert schema["additionalProperties"] is False
    assert props["image"]["description"] == "The image."
    assert props["image"]["additionalProperties"] is False
    assert props["image"]["properties"]["pullPolicy"] == {
        "description": "How often to pull.",
        "type": "string",
        "enum": ["Always", "IfNotPresent"],
    }
    assert props["resources"] == {"description": "Free-form resources.", "type": "object"}
    assert "additionalProperties" not in props["spec"]
    assert "additionalProperties" not in props["spec"]["properties"]["nested"]
    assert props["spec"]["properties"]["nested"]["properties"]["enabled"]["type"] == "boolean"
    assert props["labels"]["additionalProperties"] == {"type": "string"}
    assert props["names"]["items"] == {"type": "string"}
    assert "global" in props


def test_a_key_without_prose_is_refused() -> None:
    with pytest.raises(values_schema.ValuesDocError, match=r"image\.tag: no prose comment"):
        values_schema.render("# The image.\nimage:\n  # Repo.\n  repository: x\n\n  tag: y\n")


def test_a_blank_line_detaches_a_comment() -> None:
    with pytest.raises(values_schema.ValuesDocError, match="replicas: no prose"):
        values_schema.render("# Replicas.\n\nreplicas: 1\n")


def test_a_null_default_must_name_its_type() -> None:
    with pytest.raises(values_schema.ValuesDocError, match="null default"):
        values_schema.render("# Maybe.\nmaybe: null\n")
    schema = json.loads(
        values_schema.render('# Maybe.\n# @schema {"type": ["string", "null"]}\nmaybe: null\n')
    )
    assert schema["properties"]["maybe"]["type"] == ["string", "null"]


def test_the_chart_values_are_fully_documented() -> None:
    text = (ROOT / "charts/fleetcast/values.yaml").read_text()
    assert values_schema.render(text) == (ROOT / "charts/fleetcast/values.schema.json").read_text()
