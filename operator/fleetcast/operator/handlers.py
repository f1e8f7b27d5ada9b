"""kopf handlers: when to reconcile. What reconciling does lives in :mod:`.reconciling`.

- create/update/resume of a FleetBroadcast: apply its desired state;
- any event of an owned object (found by label, filtered server-side): repair
  drift at once, and refresh the status from the Deployments' status;
- a resync task started at startup (:mod:`.resyncing`): the periodic drift
  check, without the finalizer a kopf timer would add.

No handler returns a value: kopf would store it under ``status``, which the
CRD's strict status schema prunes. The status is written explicitly instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
from dataclasses import dataclass, field
from typing import Any, Final

import kopf

from fleetcast.operator import rendering
from fleetcast.operator import spec as crd
from fleetcast.operator.kube import ApiError, ApiKube
from fleetcast.operator.reconciling import Reconciler
from fleetcast.operator.resyncing import Peering, Resync
from fleetcast.operator.settings import Settings

#: Prefix of everything kopf writes on a FleetBroadcast (annotations, finalizer).
PREFIX: Final = "fleetcast.radiofleet.io"
#: Seconds before kopf retries a reconcile the API server refused.
RETRY_DELAY: Final = 10.0
#: Owned kinds (group, version, plural), watched to repair drift.
OWNED: Final = (
    ("", "v1", "configmaps"),
    ("", "v1", "services"),
    ("", "v1", "serviceaccounts"),
    ("apps", "v1", "deployments"),
    ("policy", "v1", "poddisruptionbudgets"),
    ("autoscaling", "v2", "horizontalpodautoscalers"),
)
OWNED_SELECTOR: Final = f"{rendering.LABEL_MANAGED_BY}={rendering.MANAGER}"


@dataclass
class Runtime:
    """What the handlers share, built once in ``__main__`` and passed in kopf's memo."""

    settings: Settings
    kube: ApiKube
    peering: Peering
    reconciler: Reconciler = field(init=False)
    resync: asyncio.Task[None] | None = None

    def __post_init__(self) -> None:
        self.reconciler = Reconciler(self.kube)


def runtime(memo: kopf.Memo) -> Runtime:
    found: Runtime = memo["runtime"]
    return found


@kopf.on.startup(backoff=5)
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf, make sure the peering object exists, start the resync."""
    shared = runtime(memo)
    configure(settings, shared.settings)
    await asyncio.to_thread(ensure_peering, shared)
    resync = Resync(shared.settings, shared.kube, shared.reconciler, shared.peering)
    shared.resync = asyncio.create_task(resync.run(), name="fleetcast-resync")


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    shared = runtime(memo)
    if shared.resync is not None:
        shared.resync.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await shared.resync
    shared.kube.close()


def configure(settings: kopf.OperatorSettings, ours: Settings) -> None:
    """kopf's settings: our annotation prefix, errors as Events, short API timeouts."""
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
        prefix=PREFIX, key="last-handled-configuration"
    )
    settings.persistence.finalizer = f"{PREFIX}/finalizer"
    # Handler warnings and errors (a refused apply) become Events on the object.
    settings.posting.loggers = True
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = rendering.MANAGER
    settings.posting.event_name_prefix = f"{rendering.MANAGER}-"
    settings.peering.lifetime = ours.peering_lifetime_seconds
    settings.networking.request_timeout = ours.request_timeout_seconds
    settings.networking.connect_timeout = min(10.0, ours.request_timeout_seconds)
    # Watches are re-opened every few minutes, so a silently dead connection
    # (a load balancer dropping it) never goes unnoticed for long.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    for group, version, plural in OWNED:
        settings.watching.label_selectors[group, version, plural] = OWNED_SELECTOR


def ensure_peering(shared: Runtime) -> None:
    """Create the peering object(s) if missing; kopf waits paused until one exists."""
    name = shared.peering.name
    if name is None:
        return
    objects: list[dict[str, Any]] = [
        {
            "apiVersion": "kopf.dev/v1",
            "kind": "KopfPeering",
            "metadata": {"name": name, "namespace": ns},
        }
        for ns in shared.settings.namespaces
    ] or [{"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}]
    for peering in objects:
        try:
            shared.kube.create(peering)
        except ApiError as error:
            logging.getLogger(__name__).warning("peering object %s not created: %s", name, error)


@kopf.on.resume(crd.API_GROUP, crd.API_VERSION, crd.PLURAL)
@kopf.on.create(crd.API_GROUP, crd.API_VERSION, crd.PLURAL)
@kopf.on.update(crd.API_GROUP, crd.API_VERSION, crd.PLURAL)
def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    try:
        runtime(memo).reconciler.reconcile(_plain(body))
    except ApiError as error:
        raise kopf.TemporaryError(f"the API server refused: {error}", delay=RETRY_DELAY) from error


def owned_changed(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime(memo).reconciler.on_owned_event(event.get("type"), _plain(body))


class ObjectLogs(logging.Filter):
    """kopf's per-object log lines made useful in the JSON logs (a filter on the output handler).

    kopf names the object only in its own text formatter, which the JSON logs
    do not use, so the line gets a ``[namespace/name]`` prefix; and its
    "Handler 'owned-…' succeeded." line, one per Deployment status update, is
    dropped. kopf's Event poster sees the record before this handler does.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith("Handler 'owned-") and message.endswith("succeeded."):
            return False
        ref = getattr(record, "k8s_ref", None)
        if isinstance(ref, dict) and ref.get("name") and not message.startswith("["):
            record.msg, record.args = f"[{ref.get('namespace')}/{ref['name']}] {message}", None
        return True


for _group, _version, _plural in OWNED:
    kopf.on.event(
        _group,
        _version,
        _plural,
        id=f"owned-{_plural}",
        labels={rendering.LABEL_MANAGED_BY: rendering.MANAGER},
    )(owned_changed)


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A private deep copy: kopf may replace the body while a thread reads it."""
    return copy.deepcopy(dict(body))
