"""Generate charts/fleetcast/values.schema.json from the comments in values.yaml.

values.yaml is the one source: every key has a prose comment right above it
(the schema's ``description``) and a default whose YAML type gives the
schema's ``type``. A last comment line ``# @schema {...}`` adds JSON-schema
keywords the default cannot show (an enum, a minimum, a nullable type). Two
keywords of our own steer the walk and never reach the output:

- ``"x-opaque": true``  the key's value is free-form (resources, affinity):
  its children are neither described nor closed.
- ``"x-open": true``    the children are described and typed, but keys not
  in values.yaml are allowed below it (the FleetBroadcast spec, whose real
  schema is the CRD, checked by the API server).

Elsewhere a non-empty mapping is closed (``additionalProperties: false``), so
a typo in a values file fails at ``helm install`` instead of being ignored.

    python scripts/values_schema.py          write values.schema.json
    python scripts/values_schema.py --check  exit 1 if the file is stale
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent / "charts" / "fleetcast"
VALUES = CHART / "values.yaml"
SCHEMA = CHART / "values.schema.json"

_KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z_][A-Za-z0-9_.-]*):(?:\s|$)")
_ANNOTATION = "@schema "
_PRIVATE = ("x-opaque", "x-open")

Path_ = tuple[str, ...]


class ValuesDocError(ValueError):
    """values.yaml breaks the documentation rules (a key without prose, a bad annotation)."""


def comments_by_key(text: str) -> dict[Path_, list[str]]:
    """Map each key path to the comment block right above it (no blank line between).

    A line-oriented read is enough because values.yaml is ours and keeps to block
    style; keys inside lists of mappings are not walked by :func:`schema_for`.
    """
    found: dict[Path_, list[str]] = {}
    stack: list[tuple[int, Path_]] = []
    pending: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            pending.append(stripped[1:].strip())
            continue
        match = _KEY.match(line)
        if not match:
            pending = []
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = (*stack[-1][1], match["key"]) if stack else (match["key"],)
        found[path] = pending
        pending = []
        stack.append((indent, path))
    return found


def split_comment(path: Path_, lines: list[str]) -> tuple[str, dict[str, Any]]:
    """Separate the prose (the description) from an optional ``@schema`` line."""
    prose = [line for line in lines if not line.startswith(_ANNOTATION)]
    notes = [line[len(_ANNOTATION) :] for line in lines if line.startswith(_ANNOTATION)]
    description = " ".join(part for part in prose if part)
    if not description:
        raise ValuesDocError(f"{'.'.join(path)}: no prose comment above the key")
    extra: dict[str, Any] = {}
    for note in notes:
        try:
            extra.update(json.loads(note))
        except json.JSONDecodeError as exc:
            raise ValuesDocError(f"{'.'.join(path)}: bad @schema JSON: {exc}") from exc
    return description, extra


def type_of(path: Path_, value: Any) -> str:
    """JSON-schema type of a default; null defaults must say their type in @schema."""
    for pytype, name in ((bool, "boolean"), (int, "integer"), (float, "number"), (str, "string")):
        if isinstance(value, pytype):
            return name
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    raise ValuesDocError(f"{'.'.join(path)}: a null default needs an @schema type")


def schema_for(
    path: Path_, value: Any, docs: dict[Path_, list[str]], *, open_: bool = False
) -> dict[str, Any]:
    """Schema of one key: description and type, then children, then the annotation."""
    description, extra = split_comment(path, docs.get(path, []))
    schema: dict[str, Any] = {"description": description}
    if value is not None or "type" not in extra:
        schema["type"] = type_of(path, value)
    if isinstance(value, list) and value and "items" not in extra:
        schema["items"] = {"type": type_of(path, value[0])}
    if isinstance(value, dict) and value and not extra.get("x-opaque"):
        open_ = open_ or bool(extra.get("x-open"))
        schema.update(object_schema(path, value, docs, open_=open_))
    schema.update({k: v for k, v in extra.items() if k not in _PRIVATE})
    return schema


def object_schema(
    path: Path_, value: dict[str, Any], docs: dict[Path_, list[str]], *, open_: bool
) -> dict[str, Any]:
    """Properties of a mapping, closed to unknown keys unless the subtree is open."""
    properties = {
        key: schema_for((*path, key), child, docs, open_=open_) for key, child in value.items()
    }
    return (
        {"properties": properties}
        if open_
        else {
            "additionalProperties": False,
            "properties": properties,
        }
    )


def render(text: str) -> str:
    """The whole values.schema.json for one values.yaml text."""
    values = yaml.safe_load(text)
    docs = comments_by_key(text)
    root = object_schema((), values, docs, open_=False)
    root["properties"]["global"] = {
        "description": "Values shared with parent charts (Helm's convention); unused here.",
        "type": "object",
    }
    schema = {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Values of the fleetcast chart (generated from values.yaml; do not edit)",
        "type": "object",
        **root,
    }
    return json.dumps(schema, indent=2, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Write the schema, or with --check report whether the committed one is stale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the schema is stale")
    args = parser.parse_args(argv)
    try:
        wanted = render(VALUES.read_text())
    except ValuesDocError as exc:
        print(f"values_schema: {VALUES}: {exc}", file=sys.stderr)
        return 1
    if args.check:
        if not SCHEMA.exists() or SCHEMA.read_text() != wanted:
            print(f"values_schema: {SCHEMA} is stale; run `make manifests`", file=sys.stderr)
            return 1
        return 0
    SCHEMA.write_text(wanted)
    return 0


if __name__ == "__main__":
    sys.exit(main())
