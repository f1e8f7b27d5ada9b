"""Which replica reconciles: a coordination.k8s.io Lease, the way kube-controller-manager does it.

Only the holder of the Lease runs kopf; the others wait, answering their
health and metrics endpoints. The rules are client-go's leader election:

- a candidate takes the Lease when it is free (no holder, as a released one
  is) or when its record has not changed for ``lease_seconds`` *as this
  candidate observed it* (its own monotonic clock, never the record's
  timestamps, so clock skew between nodes cannot elect two leaders);
- the holder renews every ``retry_seconds``; if it cannot renew for
  ``renew_deadline_seconds`` (shorter than ``lease_seconds``) it stops
  reconciling before anyone else may take over;
- a holder that stops cleanly (SIGTERM) releases the Lease, so a standby takes
  over within one retry period instead of a whole lease.

Every write is guarded by the record's resourceVersion, so two candidates
racing for a free Lease cannot both win. Why not the Kubernetes client's
``leaderelection`` module: it never releases the Lease on shutdown (takeover
always waits a full lease), decides expiry from wall-clock time, and logs
every retry at info level.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from fleetcast.operator.kube import ApiError, Kube

logger = logging.getLogger(__name__)

LEASE: Final = ("coordination.k8s.io/v1", "Lease")


def micro_time(moment: datetime) -> str:
    """The Lease's MicroTime format."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def holder_of(lease: Mapping[str, Any] | None) -> str:
    return str(((lease or {}).get("spec") or {}).get("holderIdentity") or "")


@dataclass
class Elector:
    """One candidate for the Lease ``namespace/name``."""

    kube: Kube
    namespace: str
    name: str
    identity: str
    lease_seconds: int = 15
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0
    clock: Callable[[], float] = time.monotonic
    #: The record last seen (resourceVersion) and when this candidate first saw it.
    seen: tuple[str, float] | None = field(default=None)
    on_change: Callable[[bool], None] = field(default=lambda leading: None)

    def may_take(self, lease: Mapping[str, Any]) -> bool:
        """Is the Lease ours already, free, or expired as this candidate observed it?"""
        holder = holder_of(lease)
        if holder in ("", self.identity):
            return True
        version = lease["metadata"]["resourceVersion"]
        if self.seen is None or self.seen[0] != version:
            self.seen = (version, self.clock())
            return False
        return self.clock() - self.seen[1] > self.lease_seconds

    def try_once(self) -> bool:
        """One attempt to take or renew the Lease; True when this candidate holds it."""
        try:
            lease = self.kube.get(*LEASE, self.namespace, self.name)
            if lease is None:
                return self.kube.create(self._record()) is not None
            if not self.may_take(lease):
                return False
            self.kube.patch(
                *LEASE, self.namespace, self.name, self._update(lease), manager="fleetcast-operator"
            )
        except ApiError as error:
            if error.status != 409:  # 409: someone else wrote first; try again later
                logger.warning("lease %s/%s: %s", self.namespace, self.name, error)
            return False
        return True

    def acquire(self, stop: threading.Event) -> bool:
        """Block until this candidate holds the Lease (True) or ``stop`` is set (False)."""
        logger.info("waiting for lease %s/%s as %s", self.namespace, self.name, self.identity)
        while not stop.is_set():
            if self.try_once():
                logger.info("took lease %s/%s", self.namespace, self.name)
                self.on_change(True)
                return True
            stop.wait(self.retry_seconds)
        return False

    def renew_until_lost(self, stop: threading.Event) -> None:
        """Renew every retry period; return when a renewal deadline passes (or on ``stop``)."""
        last = self.clock()
        while not stop.wait(self.retry_seconds):
            if self.try_once():
                last = self.clock()
            elif self.clock() - last > self.renew_deadline_seconds:
                logger.error(
                    "lost lease %s/%s: not renewed for %.0f s",
                    self.namespace,
                    self.name,
                    self.clock() - last,
                )
                self.on_change(False)
                return

    def release(self) -> None:
        """Give the Lease up (only if still ours), so a standby takes over at once."""
        try:
            lease = self.kube.get(*LEASE, self.namespace, self.name)
            if lease is None or holder_of(lease) != self.identity:
                return
            body = {
                "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                "spec": {
                    "holderIdentity": None,
                    "leaseDurationSeconds": 1,
                    "renewTime": micro_time(datetime.now(UTC)),
                },
            }
            self.kube.patch(*LEASE, self.namespace, self.name, body, manager="fleetcast-operator")
            logger.info("released lease %s/%s", self.namespace, self.name)
        except ApiError as error:
            logger.warning("lease %s/%s not released: %s", self.namespace, self.name, error)
        finally:
            self.on_change(False)

    def _record(self) -> dict[str, Any]:
        now = micro_time(datetime.now(UTC))
        return {
            "apiVersion": LEASE[0],
            "kind": LEASE[1],
            "metadata": {"name": self.name, "namespace": self.namespace},
            "spec": {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_seconds,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            },
        }

    def _update(self, lease: Mapping[str, Any]) -> dict[str, Any]:
        spec = lease.get("spec") or {}
        now = micro_time(datetime.now(UTC))
        taking = holder_of(lease) != self.identity
        update: dict[str, Any] = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self.lease_seconds,
            "renewTime": now,
        }
        if taking:
            update["acquireTime"] = now
            update["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (
                1 if holder_of(lease) else 0
            )
        return {
            "metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
            "spec": update,
        }
