"""Reading and waiting on cluster objects through kubectl, for the e2e suite.

kubectl (not the Python client) on purpose: the suite checks what a user of
the chart sees, with the same tool the docs tell them to use.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from fleetcast.devtools import cluster_access

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "fleetcast"
FLEETBROADCAST_API = "radiofleet.io/v1alpha1/FleetBroadcast"
T = TypeVar("T")
#: kubectl's words for a resource type the server does not (or no longer) serve.
_TYPE_GONE = re.compile(r"doesn't have a resource type|could not find the requested resource")
Obj = dict[str, Any]


class Timeout(AssertionError):
    """A waited-for state never came; the message says which and what was seen last."""


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, interval: float = 0.5) -> T:
    """Poll ``probe`` until it returns something (not None), or fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise Timeout(f"{what}: not within {timeout:.0f} s")
        time.sleep(interval)


def get(
    cluster: cluster_access.ClusterAccess, kind: str, name: str, namespace: str | None = None
) -> Obj | None:
    """The object as JSON, or None when it does not exist."""
    where = [f"--namespace={namespace}"] if namespace else []
    done = cluster.kubectl("get", kind, name, *where, "-o", "json", check=False)
    if done.returncode:
        if "NotFound" in done.stderr or "doesn't have a resource type" in done.stderr:
            return None
        raise cluster_access.ClusterError(done.stderr.strip())
    found: Obj = json.loads(done.stdout)
    return found


def names(
    cluster: cluster_access.ClusterAccess, kind: str, namespace: str, selector: str
) -> list[str]:
    """Names of the objects of ``kind`` matching a label selector."""
    done = cluster.kubectl(
        "get", kind, f"--namespace={namespace}", "-l", selector, "-o", "name", check=False
    )
    if done.returncode and _TYPE_GONE.search(done.stderr):
        return []  # the CRD is gone (or going): no object of the kind can be left
    if done.returncode:
        raise cluster_access.ClusterError(done.stderr.strip())
    return done.stdout.split()


def condition(obj: Obj, kind: str) -> Obj | None:
    """The status condition of type ``kind``, if the object has one."""
    for entry in obj.get("status", {}).get("conditions", []):
        if entry.get("type") == kind:
            found: Obj = entry
            return found
    return None


def is_true(obj: Obj | None, kind: str, generation: int | None = None) -> bool:
    """Condition ``kind`` is True (for at least ``generation`` when given)."""
    if obj is None:
        return False
    entry = condition(obj, kind)
    if entry is None or entry.get("status") != "True":
        return False
    return generation is None or obj.get("status", {}).get("observedGeneration", 0) >= generation


def crd_names() -> list[str]:
    """Names of the CRDs the chart installs (one per files/crd-*.yaml)."""
    docs = (yaml.safe_load(p.read_text()) for p in sorted((CHART / "files").glob("crd-*.yaml")))
    return [doc["metadata"]["name"] for doc in docs]


def render(cluster: cluster_access.ClusterAccess, release: str, namespace: str, *args: str) -> str:
    """`helm template` of the chart as the API server would receive it (FleetBroadcast served)."""
    return cluster.helm(
        "template", release, str(CHART), f"--namespace={namespace}",
        f"--api-versions={FLEETBROADCAST_API}", *args,
    ).stdout  # fmt: skip
