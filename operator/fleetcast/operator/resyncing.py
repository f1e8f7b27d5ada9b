"""The periodic checks: every FleetBroadcast re-reconciled now and then, sooner when it failed.

Why not a kopf timer: kopf puts a finalizer on every object a timer or daemon
serves, so deleting a FleetBroadcast (or its namespace) would hang whenever
the operator is down or uninstalled. Owned objects carry ownerReferences and
need no finalizer, so this loop runs beside kopf instead: one task, owned by
the startup/cleanup handlers, in the one replica that holds the Lease (the
others do not run kopf at all). Drift is mostly repaired at once by the
owned-object watches; this is the net under them, the retry for a
FleetBroadcast whose last reconcile failed (a Secret that does not exist yet),
and the check for rotated Secrets: the operator reads the named Secrets (get,
never watch) every ``secret_check_seconds`` and reconciles when a value the
pods read changed, so the pods roll with the new key.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from fleetcast.operator import conditions
from fleetcast.operator.kube import FLEETBROADCAST, ApiError, Kube
from fleetcast.operator.reconciling import ApplyFailed, Reconciler
from fleetcast.operator.settings import Settings

logger = logging.getLogger(__name__)


@dataclass
class Resync:
    settings: Settings
    kube: Kube
    reconciler: Reconciler
    #: (namespace, name) -> monotonic time of its next reconcile.
    due: dict[tuple[str, str], float] = field(default_factory=dict)
    #: Monotonic time of the next Secret check.
    secrets_due: float = 0.0

    async def run(self) -> None:
        """Forever: one pass per tick, in a worker thread (the client is blocking)."""
        tick = min(
            self.settings.recheck_seconds,
            self.settings.resync_seconds,
            self.settings.secret_check_seconds,
        )
        while True:
            await asyncio.sleep(tick)
            try:
                await asyncio.to_thread(self.run_once)
            except Exception:
                logger.exception("resync pass failed; next pass in %.0f s", tick)

    def run_once(self) -> None:
        scopes: tuple[str | None, ...] = self.settings.namespaces or (None,)
        now = time.monotonic()
        check_secrets = now >= self.secrets_due
        if check_secrets:
            self.secrets_due = now + self.settings.secret_check_seconds
        seen: set[tuple[str, str]] = set()
        for namespace in scopes:
            for body in self.kube.list_objects(*FLEETBROADCAST, namespace):
                seen.add(self._check(body, check_secrets=check_secrets))
        for gone in set(self.due) - seen:
            del self.due[gone]

    def _check(self, body: Mapping[str, Any], *, check_secrets: bool) -> tuple[str, str]:
        """Reconcile ``body`` if it is due or its Secrets changed; returns its key."""
        meta = body["metadata"]
        key, now = (meta["namespace"], meta["name"]), time.monotonic()
        if key not in self.due:
            self.due[key] = now + self._interval(_failed(body))
        if meta.get("deletionTimestamp"):
            return key
        trigger = "resync" if now >= self.due[key] else ""
        if not trigger and check_secrets and self.reconciler.secrets_changed(body):
            trigger = "secret"
        if not trigger:
            return key
        failed = True
        try:
            failed = not self.reconciler.reconcile(body, trigger=trigger).is_true
        except (ApiError, ApplyFailed) as error:
            # Already in the status, and kopf retries its handler with backoff:
            # note it once per pass, without a traceback.
            logger.warning("resync of %s/%s incomplete: %s", *key, error)
        except Exception:
            logger.exception("resync of %s/%s failed", *key)
        self.due[key] = now + self._interval(failed)
        return key

    def _interval(self, failed: bool) -> float:
        return self.settings.recheck_seconds if failed else self.settings.resync_seconds


def _failed(body: Mapping[str, Any]) -> bool:
    stored = (body.get("status") or {}).get("conditions", [])
    found = conditions.find(stored, conditions.RECONCILED)
    return found is not None and not found.is_true
