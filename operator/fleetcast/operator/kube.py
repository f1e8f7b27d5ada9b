"""The operator's narrow seam to the Kubernetes API, and its one implementation.

Everything the operator does to the cluster goes through :class:`Kube`:
server-side apply, get, list, delete (guarded by uid), merge patches (the
managedFields rewrite, the Lease, guarded by resourceVersion), a status patch
guarded by resourceVersion, and create (Events, the Lease). :class:`ApiKube`
implements it over the official client's low-level ``ApiClient`` with paths
from a fixed table of the kinds the operator touches: no discovery calls and
no discovery cache on disk (the pod's root filesystem is read-only).
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any, Final, Protocol

import orjson
from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

from fleetcast.operator import spec as crd

Manifest = dict[str, Any]

#: (apiVersion, kind) -> (plural, namespaced) of every kind the operator touches.
RESOURCES: Final[dict[tuple[str, str], tuple[str, bool]]] = {
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Service"): ("services", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Secret"): ("secrets", True),
    ("v1", "Event"): ("events", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("autoscaling/v2", "HorizontalPodAutoscaler"): ("horizontalpodautoscalers", True),
    ("policy/v1", "PodDisruptionBudget"): ("poddisruptionbudgets", True),
    (f"{crd.API_GROUP}/{crd.API_VERSION}", crd.KIND): (crd.PLURAL, True),
    ("v1", "Pod"): ("pods", True),
    ("coordination.k8s.io/v1", "Lease"): ("leases", True),
    ("keda.sh/v1alpha1", "ScaledObject"): ("scaledobjects", True),
    ("keda.sh/v1alpha1", "TriggerAuthentication"): ("triggerauthentications", True),
    ("monitoring.coreos.com/v1", "PodMonitor"): ("podmonitors", True),
}
FLEETBROADCAST: Final = (f"{crd.API_GROUP}/{crd.API_VERSION}", crd.KIND)


class ApiError(Exception):
    """A refused request, with the API server's status code and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
        self.message = message


class Kube(Protocol):
    def apply(self, manifest: Manifest, *, manager: str) -> Manifest:
        """Server-side apply, forcing ownership of the fields the manifest names."""
        ...

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Manifest | None:
        """The object, or None when it does not exist."""
        ...

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None, selector: str = ""
    ) -> list[Manifest]:
        """Objects of a kind in a namespace (None: every namespace), by label selector."""
        ...

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
        """Delete (only the object with that uid, when given); False when it was already gone.

        ``orphan`` leaves what it owns (a Deployment's ReplicaSets) in place.
        """
        ...

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
        """JSON merge patch (a ``metadata.resourceVersion`` in it makes it conditional: 409)."""
        ...

    def create(self, manifest: Manifest) -> Manifest | None:
        """Create; None when an object of that name exists already."""
        ...

    def patch_status(self, namespace: str, name: str, status: Manifest, version: str) -> Manifest:
        """Replace a FleetBroadcast's status if it is still at ``version`` (else ApiError 409)."""
        ...


def path(
    api_version: str, kind: str, namespace: str | None, name: str | None = None, sub: str = ""
) -> str:
    plural, namespaced = RESOURCES[(api_version, kind)]
    url = "/api/v1" if api_version == "v1" else f"/apis/{api_version}"
    if namespaced and namespace is not None:
        url += f"/namespaces/{namespace}"
    url += f"/{plural}"
    if name is not None:
        url += f"/{name}"
    return f"{url}/{sub}" if sub else url


def load_configuration() -> client.Configuration:
    """In-cluster credentials, else the kubeconfig (KUBECONFIG): kopf's own order."""
    configuration = client.Configuration()
    try:
        config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    except config.ConfigException:
        config.load_kube_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


class ApiKube:
    """:class:`Kube` over ``kubernetes.client.ApiClient`` (synchronous; kopf runs it in threads)."""

    def __init__(self, configuration: client.Configuration, *, timeout: float) -> None:
        self._api = client.ApiClient(configuration)
        self._timeout = timeout

    def close(self) -> None:
        self._api.close()  # type: ignore[no-untyped-call]

    def apply(self, manifest: Manifest, *, manager: str) -> Manifest:
        meta = manifest["metadata"]
        url = path(manifest["apiVersion"], manifest["kind"], meta.get("namespace"), meta["name"])
        query = [("fieldManager", manager), ("force", "true")]
        return self._call("PATCH", url, query, manifest, "application/apply-patch+yaml") or {}

    def get(self, api_version: str, kind: str, namespace: str | None, name: str) -> Manifest | None:
        return self._call("GET", path(api_version, kind, namespace, name), missing_ok=True)

    def list_objects(
        self, api_version: str, kind: str, namespace: str | None, selector: str = ""
    ) -> list[Manifest]:
        query = [("labelSelector", selector)] if selector else None
        found = self._call("GET", path(api_version, kind, namespace), query) or {}
        items: list[Manifest] = found.get("items", [])
        return items

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
        url = path(api_version, kind, namespace, name)
        options: Manifest = {"apiVersion": "v1", "kind": "DeleteOptions"}
        if uid is not None:
            options["preconditions"] = {"uid": uid}
        if orphan:
            options["propagationPolicy"] = "Orphan"
        return self._call("DELETE", url, body=options, missing_ok=True) is not None

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
        url = path(api_version, kind, namespace, name)
        query = [("fieldManager", manager)]
        return self._call("PATCH", url, query, body, "application/merge-patch+json") or {}

    def create(self, manifest: Manifest) -> Manifest | None:
        url = path(manifest["apiVersion"], manifest["kind"], manifest["metadata"].get("namespace"))
        try:
            return self._call("POST", url, body=manifest)
        except ApiError as error:
            if error.status == 409:
                return None
            raise

    def serves(self, group_version: str, plural: str) -> bool:
        """Does the API server serve ``plural`` in ``group_version`` (discovery)?"""
        found = self._call("GET", f"/apis/{group_version}", missing_ok=True) or {}
        return any(r.get("name") == plural for r in found.get("resources", []))

    def patch_status(self, namespace: str, name: str, status: Manifest, version: str) -> Manifest:
        url = path(*FLEETBROADCAST, namespace, name, sub="status")
        body = {"metadata": {"resourceVersion": version}, "status": status}
        return (
            self._call("PATCH", url, body=body, content_type="application/merge-patch+json") or {}
        )

    def _call(
        self,
        method: str,
        url: str,
        query: list[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | None = None,
        content_type: str = "application/json",
        *,
        missing_ok: bool = False,
    ) -> Manifest | None:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        request = self._api.param_serialize(
            method=method,
            resource_path=url,
            query_params=query or [],
            header_params=headers,
            body=body,
            auth_settings=["BearerToken"],
        )
        try:
            response = self._api.call_api(*request, _request_timeout=self._timeout)
            response.read()  # type: ignore[no-untyped-call]
        except ApiException as error:  # raised for some statuses by the REST layer
            _refuse(error.status or 0, error.body, missing_ok=missing_ok)
            return None
        if not 200 <= response.status < 300:
            _refuse(response.status, response.data, missing_ok=missing_ok)
            return None
        document: Manifest = orjson.loads(response.data) if response.data else {}
        return document


def _refuse(status: int, body: bytes | str | None, *, missing_ok: bool) -> None:
    """Raise :class:`ApiError` with the server's message, unless a 404 is fine."""
    if status == 404 and missing_ok:
        return
    message = str(body or "")
    with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
        message = orjson.loads(body or b"").get("message", message)
    raise ApiError(status, message)
