"""``fleetcast-operator``: the composition root of the operator process.

Reads the settings once, sets up JSON logs and the Kubernetes client, picks
this replica's peering identity and priority, and runs kopf with the handlers
of :mod:`.handlers` until SIGTERM/SIGINT (kopf handles both and runs the
cleanup handlers, which stop the resync and withdraw from peering at once so a
standby replica takes over without waiting for the keep-alive to expire).
"""

from __future__ import annotations

import logging
import random
import socket
import uuid
from typing import Any, cast

import kopf

from fleetcast.common import logs
from fleetcast.operator import handlers, kube
from fleetcast.operator.resyncing import Peering
from fleetcast.operator.settings import Settings


def peering_of(settings: Settings) -> Peering:
    """Identity unique per process; priority from settings, else random (see Settings)."""
    identity = f"{socket.gethostname()}/{uuid.uuid4().hex[:8]}"
    priority = settings.peering_priority
    if priority is None:
        priority = random.randint(1, 2**31 - 1)
    return Peering(None if settings.standalone else settings.peering_name, identity, priority)


def main() -> None:
    settings = Settings()
    logs.configure(settings.log_level, component="operator")
    for output in logging.getLogger().handlers:
        output.addFilter(handlers.ObjectLogs())
    peering = peering_of(settings)
    configuration = kube.load_configuration()
    shared = handlers.Runtime(
        settings, kube.ApiKube(configuration, timeout=settings.request_timeout_seconds), peering
    )
    kopf.run(
        clusterwide=settings.clusterwide,
        namespaces=list(settings.namespaces),
        standalone=settings.standalone,
        peering_name=None if settings.standalone else settings.peering_name,
        priority=peering.priority,
        identity=cast(Any, peering.identity),  # kopf's Identity is a NewType of str
        liveness_endpoint=settings.health_endpoint or None,
        memo=kopf.Memo(runtime=shared),
    )


if __name__ == "__main__":
    main()
