"""Names, labels and owner references of the objects a FleetBroadcast owns. Pure.

Shared by every renderer (:mod:`.rendering`, :mod:`.pods`, :mod:`.scaling`,
:mod:`.monitoring`) and by the code that finds owned objects again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Final

from fleetcast.operator.spec import API_GROUP, API_VERSION, KIND

GATEWAY: Final = "gateway"
CONSUMER: Final = "consumer"
MANAGER: Final = "fleetcast-operator"
LABEL_MANAGED_BY: Final = "app.kubernetes.io/managed-by"
CONFIG_HASH_ANNOTATION: Final = "fleetcast.radiofleet.io/config-hash"
#: The longest suffix of an owned object's name (``<name>-consumer-config``).
LONGEST_SUFFIX: Final = "-consumer-config"
KEDA_API: Final = "keda.sh/v1alpha1"
MONITORING_API: Final = "monitoring.coreos.com/v1"
Manifest = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Owner:
    """The FleetBroadcast the objects belong to."""

    name: str
    namespace: str
    uid: str


@dataclass(frozen=True, slots=True)
class ObjectRef:
    api_version: str
    kind: str
    name: str


def name_of(owner: Owner, component: str, suffix: str = "") -> str:
    return f"{owner.name}-{component}{suffix}"


def selector_labels(owner: Owner, component: str) -> dict[str, str]:
    """The immutable Deployment selector: never add to it."""
    return {
        "app.kubernetes.io/name": "fleetcast",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": component,
    }


def labels(owner: Owner, component: str) -> dict[str, str]:
    return {
        **selector_labels(owner, component),
        "app.kubernetes.io/part-of": "fleetcast",
        LABEL_MANAGED_BY: MANAGER,
    }


def owner_reference(owner: Owner) -> dict[str, Any]:
    return {
        "apiVersion": f"{API_GROUP}/{API_VERSION}",
        "kind": KIND,
        "name": owner.name,
        "uid": owner.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def owned_object(api_version: str, kind: str, name: str, owner: Owner, component: str) -> Manifest:
    return {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": {
            "name": name,
            "namespace": owner.namespace,
            "labels": labels(owner, component),
            "ownerReferences": [owner_reference(owner)],
        },
    }
