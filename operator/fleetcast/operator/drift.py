"""Has a live object drifted from what the operator applies? Pure.

The live object always carries more than the manifest: server defaults,
status, other managers' fields. So drift is "something the manifest says is
not so in the live object": every key of the manifest must be present with an
equal value, lists element by element. Quantities compare by value ("1000m"
is "1"), because the API server rewrites them to canonical form; a zero value
the manifest sets (``minReadySeconds: 0``, ``false``, ``[]``) may be absent
from the live object, because the API server omits empty fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from kubernetes.utils.quantity import parse_quantity


def differences(desired: Any, live: Any, where: str = "") -> list[str]:
    """Paths (``.spec.replicas``, ``.spec.ports[0].port``) where ``live`` differs."""
    if isinstance(desired, Mapping):
        if not isinstance(live, Mapping):
            return [where or "."]
        found: list[str] = []
        for key, value in desired.items():
            here = f"{where}.{key}"
            if key in live:
                found += differences(value, live[key], here)
            elif not _empty(value):
                found.append(here)
        return found
    if isinstance(desired, list):
        if not isinstance(live, list) or len(live) < len(desired):
            return [where or "."]
        found = []
        for index, item in enumerate(desired):
            found += differences(item, live[index], f"{where}[{index}]")
        return found
    return [] if _same(desired, live) else [where or "."]


def _empty(value: Any) -> bool:
    """A value Kubernetes omits from an object (omitempty): 0, false, "", [], {}."""
    return value is False or (not isinstance(value, bool) and value in (0, "", [], {}))


def _same(desired: Any, live: Any) -> bool:
    if isinstance(desired, bool) or isinstance(live, bool):
        return desired is live  # True == 1 in Python, not in Kubernetes
    if desired == live:
        return True
    if isinstance(desired, int | str) and isinstance(live, int | str):
        return _quantity(desired) is not None and _quantity(desired) == _quantity(live)
    return False


def _quantity(value: int | str) -> Decimal | None:
    try:
        parsed: Decimal = parse_quantity(value)  # type: ignore[no-untyped-call]
    except (ValueError, InvalidOperation):
        return None
    return parsed
