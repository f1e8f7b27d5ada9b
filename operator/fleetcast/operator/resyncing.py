"""The periodic drift check: every FleetBroadcast re-reconciled now and then.

Why not a kopf timer: kopf puts a finalizer on every object a timer or daemon
serves, so deleting a FleetBroadcast (or its namespace) would hang whenever
the operator is down or uninstalled. Owned objects carry ownerReferences and
need no finalizer, so this loop runs beside kopf instead: one task, owned by
the startup/cleanup handlers, that only acts while kopf's peering lets this
replica lead (:mod:`.leadership`). Drift is mostly repaired at once by the
owned-object watches; this is the net under them, and the retry for a
FleetBroadcast that is Degraded (a Secret that does not exist yet), which is
rechecked sooner than the others.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fleetcast.operator import conditions, leadership
from fleetcast.operator.kube import FLEETBROADCAST, ApiError, Kube
from fleetcast.operator.reconciling import Reconciler
from fleetcast.operator.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Peering:
    """This replica's place in kopf peering (None name: standalone)."""

    name: str | None
    identity: str
    priority: int


@dataclass
class Resync:
    settings: Settings
    kube: Kube
    reconciler: Reconciler
    peering: Peering
    #: (namespace, name) -> monotonic time of its next check.
    due: dict[tuple[str, str], float] = field(default_factory=dict)

    async def run(self) -> None:
        """Forever: one pass per tick, in a worker thread (the client is blocking)."""
        tick = min(self.settings.recheck_seconds, self.settings.resync_seconds)
        while True:
            await asyncio.sleep(tick)
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                logger.exception("resync pass failed; next pass in %.0f s", tick)

    def run_once(self) -> None:
        scopes: tuple[str | None, ...] = self.settings.namespaces or (None,)
        seen: set[tuple[str, str]] = set()
        for namespace in scopes:
            if not self.leading(namespace):
                continue
            for body in self.kube.list_objects(*FLEETBROADCAST, namespace):
                seen.add(self._check(body))
        for gone in set(self.due) - seen:
            del self.due[gone]

    def leading(self, namespace: str | None) -> bool:
        if self.peering.name is None:
            return True
        if namespace is None:
            found = self.kube.get("kopf.dev/v1", "ClusterKopfPeering", None, self.peering.name)
        else:
            found = self.kube.get("kopf.dev/v1", "KopfPeering", namespace, self.peering.name)
        peers = (found or {}).get("status") or {}
        return leadership.is_leader(
            peers, self.peering.identity, self.peering.priority, datetime.now(UTC)
        )

    def _check(self, body: Mapping[str, Any]) -> tuple[str, str]:
        """Reconcile ``body`` if it is due; returns its key."""
        meta = body["metadata"]
        key, now = (meta["namespace"], meta["name"]), time.monotonic()
        if key not in self.due:
            self.due[key] = now + self._interval(_is_degraded(body))
        if now < self.due[key] or meta.get("deletionTimestamp"):
            return key
        degraded = False
        try:
            degraded = self.reconciler.reconcile(body).is_true
        except ApiError as error:
            # Already in the status as ApplyFailed, and kopf retries its handler
            # with backoff: note it once per pass, without a traceback.
            logger.warning("resync of %s/%s refused: %s", *key, error)
        except Exception:
            logger.exception("resync of %s/%s failed", *key)
        self.due[key] = now + self._interval(degraded)
        return key

    def _interval(self, degraded: bool) -> float:
        return self.settings.recheck_seconds if degraded else self.settings.resync_seconds


def _is_degraded(body: Mapping[str, Any]) -> bool:
    found = conditions.find((body.get("status") or {}).get("conditions", []), conditions.DEGRADED)
    return found is not None and found.is_true
