"""Taking back fields someone else set on an owned object: managedFields arithmetic. Pure.

Server-side apply removes a field only when its applier stops applying it and
no other manager owns it. A hand edit (``kubectl edit``/``patch``/``replace``,
``kubectl set image``) makes its tool the manager of what it changed, so the
operator's next apply neither removes a hand-added field (``hostNetwork:
true``, an extra env variable) nor an edited list entry whose key changed (a
Service port 80 -> 81 becomes a second entry named "http", which the API
server refuses: ``Duplicate value``, and every later apply fails).

The way out is the one the Kubernetes documentation gives for transferring
ownership: rewrite ``metadata.managedFields`` so that the operator's apply
entry owns what the other managers own, then apply. The API server then
removes every such field the manifest does not name, and sets back the ones
it does. Left alone: the object's own metadata (labels and annotations others
add, such as the Deployment controller's revision), subresource entries
(status, the HPA's and ``kubectl scale``'s scale), ``spec.replicas`` while an
autoscaler owns it, and ``kubectl rollout restart``'s template annotation.

A ``fieldsV1`` tree is a set of paths (``{"f:spec": {"f:replicas": {}}}``,
``"k:{...}"`` list-map keys, ``"."`` for a node itself); the functions here
convert it to and from a set of path tuples.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

Path = tuple[str, ...]
Tree = dict[str, Any]

#: Subtrees no other manager ever loses: the object's own metadata.
ALWAYS_PROTECTED: Final[tuple[Path, ...]] = (
    ("f:metadata",),
    ("f:status",),
    # `kubectl rollout restart`: a restart someone asked for is not drift.
    ("f:spec", "f:template", "f:metadata", "f:annotations", "f:kubectl.kubernetes.io/restartedAt"),
)
#: Left to the autoscaler when the manifest names no replica count.
REPLICAS: Final[Path] = ("f:spec", "f:replicas")


def paths(tree: Mapping[str, Any], prefix: Path = ()) -> set[Path]:
    """The set of owned paths a fieldsV1 tree describes."""
    found: set[Path] = set()
    for key, child in tree.items():
        here = (*prefix, key)
        if isinstance(child, Mapping) and child:
            found |= paths(child, here)
        else:
            found.add(here)
    return found


def tree(owned: Iterable[Path]) -> Tree:
    """The fieldsV1 tree of a set of paths."""
    root: Tree = {}
    for path in sorted(owned):
        node = root
        for key in path:
            node = node.setdefault(key, {})
    return root


def _protected(path: Path, protected: Sequence[Path]) -> bool:
    return any(path[: len(prefix)] == prefix for prefix in protected)


def protected_paths(manifest: Mapping[str, Any]) -> tuple[Path, ...]:
    """What stays with other managers for this manifest."""
    spec = manifest.get("spec")
    autoscaled = manifest.get("kind") == "Deployment" and isinstance(spec, Mapping)
    if autoscaled and isinstance(spec, Mapping) and "replicas" not in spec:
        return (*ALWAYS_PROTECTED, REPLICAS)
    return ALWAYS_PROTECTED


@dataclass(frozen=True, slots=True)
class Foreign:
    """Fields of an owned object that another manager set."""

    manager: str
    operation: str
    owned: frozenset[Path]

    def describe(self) -> str:
        """``kubectl-edit: .spec.ports[port=81]`` style, for Events (at most 5 paths)."""
        shown = sorted({_readable(p) for p in self.owned})
        more = f" and {len(shown) - 5} more" if len(shown) > 5 else ""
        return f"{self.manager}: {', '.join(shown[:5])}{more}"


def foreign_fields(
    live: Mapping[str, Any], ours: Iterable[str], protected: Sequence[Path]
) -> list[Foreign]:
    """Every other manager's claim on fields outside ``protected``, from managedFields."""
    mine = set(ours)
    found = []
    for entry in live.get("metadata", {}).get("managedFields") or []:
        if entry.get("manager") in mine or entry.get("subresource"):
            continue
        owned = {p for p in paths(entry.get("fieldsV1") or {}) if not _protected(p, protected)}
        owned = {p for p in owned if p[-1] != "." or len(p) > 1}
        if owned:
            found.append(
                Foreign(entry.get("manager", "?"), entry.get("operation", "?"), frozenset(owned))
            )
    return found


def reclaimed(
    live: Mapping[str, Any], manager: str, foreign: Sequence[Foreign], now: str
) -> list[dict[str, Any]]:
    """managedFields with ``foreign``'s paths moved to ``manager``'s Apply entry."""
    taken = {(f.manager, f.operation): f.owned for f in foreign}
    everything: set[Path] = set().union(*taken.values()) if taken else set()
    result: list[dict[str, Any]] = []
    applied = False
    for entry in live.get("metadata", {}).get("managedFields") or []:
        entry = dict(entry)
        key = (entry.get("manager"), entry.get("operation"))
        if entry.get("subresource"):
            result.append(entry)
            continue
        if key == (manager, "Apply"):
            mine = paths(entry.get("fieldsV1") or {}) | everything
            entry["fieldsV1"], applied = tree(mine), True
        elif key in taken:
            left = paths(entry.get("fieldsV1") or {}) - taken[key]
            if not left:
                continue
            entry["fieldsV1"] = tree(left)
        result.append(entry)
    if not applied:
        result.append(_apply_entry(live, manager, everything, now))
    return result


def _apply_entry(
    live: Mapping[str, Any], manager: str, owned: set[Path], now: str
) -> dict[str, Any]:
    return {
        "manager": manager,
        "operation": "Apply",
        "apiVersion": live.get("apiVersion", ""),
        "time": now,
        "fieldsType": "FieldsV1",
        "fieldsV1": tree(owned),
    }


def _readable(path: Path) -> str:
    """``("f:spec", "k:{\"port\":81}", "f:name")`` -> ``.spec[port=81].name``."""
    out = ""
    for key in path:
        kind, _, rest = key.partition(":")
        if key == ".":
            continue
        if kind == "f":
            out += f".{rest}"
        elif kind == "k":
            out += "[" + ",".join(f"{k}={v}" for k, v in _key(rest).items()) + "]"
        elif kind == "v":
            out += f"[={rest}]"
        else:
            out += f"[{rest}]"
    return out or "."


def _key(raw: str) -> dict[str, Any]:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return {"key": raw}
    return parsed if isinstance(parsed, dict) else {"key": raw}
