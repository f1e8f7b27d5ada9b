"""kopf handlers: when to reconcile. What reconciling does lives in :mod:`.reconciling`.

- create/update/resume of a FleetBroadcast: apply its desired state;
- any event of an owned object (found by label, filtered server-side): repair
  drift at once, and refresh the status from the Deployments' status;
- any event of a pod of a FleetBroadcast: refresh the status (a pod that
  cannot be scheduled, pulled or started shows in Degraded at once);
- tasks started at startup and stopped at cleanup: the periodic checks
  (:mod:`.resyncing`), the pod prober (:mod:`.probing`) and the Lease renewal
  (:mod:`.election`); losing the Lease stops kopf (``stop_flag``).

kopf runs only in the replica that holds the Lease, standalone (no kopf
peering) and with its cluster scanning off: it serves the namespaces it was
given, or all of them, without listing namespaces or CRDs, so a namespaced
operator needs no cluster-wide permission at all.

No handler returns a value: kopf would store it under ``status``, which the
CRD's strict status schema prunes. The status is written explicitly instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import logging
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import Any, Final

import kopf

from fleetcast.operator import probing, rendering
from fleetcast.operator import spec as crd
from fleetcast.operator.election import Elector
from fleetcast.operator.kube import FLEETBROADCAST, ApiError, ApiKube
from fleetcast.operator.opmetrics import Metrics
from fleetcast.operator.reconciling import ApplyFailed, Reconciler
from fleetcast.operator.resyncing import Resync
from fleetcast.operator.settings import Settings

logger = logging.getLogger(__name__)

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
PODS: Final = ("", "v1", "pods")
OWNED_SELECTOR: Final = f"{rendering.LABEL_MANAGED_BY}={rendering.MANAGER}"


@dataclass
class Runtime:
    """What the handlers share, built once in ``__main__`` and passed in kopf's memo."""

    settings: Settings
    kube: ApiKube
    metrics: Metrics
    #: The Lease candidate (None without leader election).
    elector: Elector | None = None
    #: kopf's stop flag: set when the Lease is lost.
    stop: threading.Event = field(default_factory=threading.Event)
    reconciler: Reconciler = field(init=False)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    renewing: threading.Event = field(default_factory=threading.Event)
    lost: bool = False

    def __post_init__(self) -> None:
        self.reconciler = Reconciler(self.kube, self.metrics)

    def spawn(self, work: Coroutine[Any, Any, None], name: str) -> None:
        self.tasks.append(asyncio.create_task(work, name=name))


def runtime(memo: kopf.Memo) -> Runtime:
    found: Runtime = memo["runtime"]
    return found


@kopf.on.startup(backoff=5)
async def start(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    """Configure kopf, start the periodic checks, the prober and the Lease renewal."""
    shared = runtime(memo)
    configure(settings, shared.settings)
    resync = Resync(shared.settings, shared.kube, shared.reconciler)
    shared.spawn(resync.run(), "fleetcast-resync")
    if shared.settings.probe_seconds:
        prober = probing.Prober(lambda: list_pods(shared), shared.settings.probe_seconds)
        shared.reconciler.status.reports = prober.reports.get
        shared.reconciler.status.probing = True
        shared.spawn(prober.run(lambda key: refresh(shared, key)), "fleetcast-prober")
    if shared.elector is not None:
        shared.spawn(keep_lease(shared), "fleetcast-lease")


@kopf.on.cleanup()
async def stop(memo: kopf.Memo, **_: Any) -> None:
    shared = runtime(memo)
    shared.renewing.set()
    for task in shared.tasks:
        task.cancel()
    for task in shared.tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if shared.elector is not None and not shared.lost:
        await asyncio.to_thread(shared.elector.release)
    shared.kube.close()
    # kopf waits for a threading.Event stop flag in an executor thread, which
    # asyncio.run joins at exit: set it, or a SIGTERM'd operator never exits.
    shared.stop.set()


async def keep_lease(shared: Runtime) -> None:
    """Renew the Lease; if a renewal deadline passes, stop reconciling (kopf's stop flag)."""
    if shared.elector is None:
        return
    await asyncio.to_thread(shared.elector.renew_until_lost, shared.renewing)
    if not shared.renewing.is_set():
        shared.lost = True
        shared.stop.set()


async def refresh(shared: Runtime, key: tuple[str, str]) -> None:
    """The prober saw new reports for ``key``: publish its status."""
    body = await asyncio.to_thread(shared.kube.get, *FLEETBROADCAST, *key)
    if body is not None:
        await asyncio.to_thread(shared.reconciler.refresh, body)


def list_pods(shared: Runtime) -> list[dict[str, Any]]:
    scopes: tuple[str | None, ...] = shared.settings.namespaces or (None,)
    found: list[dict[str, Any]] = []
    for namespace in scopes:
        found += shared.kube.list_objects("v1", "Pod", namespace, OWNED_SELECTOR)
    return found


def configure(settings: kopf.OperatorSettings, ours: Settings) -> None:
    """kopf's settings: our annotation prefix, errors as Events, no scanning, short timeouts."""
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
    # The namespaces are given and the CRD exists before kopf starts (__main__
    # waits for it): no cluster-wide list/watch of namespaces and CRDs.
    settings.scanning.disabled = True
    settings.networking.request_timeout = ours.request_timeout_seconds
    settings.networking.connect_timeout = min(10.0, ours.request_timeout_seconds)
    # Watches are re-opened every few minutes, so a silently dead connection
    # (a load balancer dropping it) never goes unnoticed for long.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    for group, version, plural in (*OWNED, PODS):
        settings.watching.label_selectors[group, version, plural] = OWNED_SELECTOR


@kopf.on.resume(crd.API_GROUP, crd.API_VERSION, crd.PLURAL)
@kopf.on.create(crd.API_GROUP, crd.API_VERSION, crd.PLURAL)
@kopf.on.update(crd.API_GROUP, crd.API_VERSION, crd.PLURAL)
def reconcile(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    try:
        runtime(memo).reconciler.reconcile(_plain(body))
    except (ApiError, ApplyFailed) as error:
        raise kopf.TemporaryError(f"the API server refused: {error}", delay=RETRY_DELAY) from error


def owned_changed(event: kopf.RawEvent, body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime(memo).reconciler.on_owned_event(event.get("type"), _plain(body))


def pod_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    runtime(memo).reconciler.on_pod_event(_plain(body))


class ObjectLogs(logging.Filter):
    """kopf's per-object log lines made useful in the JSON logs (a filter on the output handler).

    kopf names the object only in its own text formatter, which the JSON logs
    do not use, so the line gets a ``[namespace/name]`` prefix; and its
    "Handler 'owned-…' succeeded." line, one per Deployment status update or
    pod event, is dropped. kopf's Event poster sees the record before this
    handler does.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if message.startswith(("Handler 'owned-", "Handler 'pods'")) and message.endswith(
            "succeeded."
        ):
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

kopf.on.event(*PODS, id="pods", labels={rendering.LABEL_MANAGED_BY: rendering.MANAGER})(pod_changed)


def _plain(body: kopf.Body) -> dict[str, Any]:
    """A private deep copy: kopf may replace the body while a thread reads it."""
    return copy.deepcopy(dict(body))
