"""``fleetcast-operator``: the composition root of the operator process.

Reads the settings once, sets up JSON logs, the Kubernetes client and the
/healthz + /metrics endpoint (for the whole process), waits for the Lease
(:mod:`.election`: only its holder reconciles), waits until the API server
serves FleetBroadcasts, then runs kopf with the handlers of :mod:`.handlers`
until SIGTERM/SIGINT (kopf handles both and runs the cleanup handlers, which
stop the background tasks and release the Lease, so a standby takes over at
once) or until the Lease is lost, which exits with status 1: the container
restarts and stands by, as client-go's leader election does.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from typing import Any, Final, cast

import kopf

from fleetcast.common import logs
from fleetcast.operator import handlers, kube, opmetrics
from fleetcast.operator import spec as crd
from fleetcast.operator.election import Elector
from fleetcast.operator.settings import Settings

logger = logging.getLogger("fleetcast.operator")

#: Seconds between checks that the API server serves FleetBroadcasts.
CRD_POLL_SECONDS: Final = 2.0


def elector_of(settings: Settings, api: kube.ApiKube, metrics: opmetrics.Metrics) -> Elector | None:
    if not settings.leader_election:
        return None
    return Elector(
        api,
        settings.lease_namespace,
        settings.lease_name,
        settings.identity,
        lease_seconds=settings.lease_seconds,
        renew_deadline_seconds=settings.renew_deadline_seconds,
        retry_seconds=settings.retry_seconds,
        on_change=lambda leading: metrics.leader.set(1 if leading else 0),
    )


def wait_for_the_crd(api: kube.ApiKube) -> None:
    """kopf's scanning is off, so FleetBroadcasts must be served before it starts."""
    group_version = f"{crd.API_GROUP}/{crd.API_VERSION}"
    while not api.serves(group_version, crd.PLURAL):
        logger.warning("the API server does not serve %s yet; waiting", group_version)
        time.sleep(CRD_POLL_SECONDS)


def main() -> None:
    settings = Settings()
    logs.configure(settings.log_level, component="operator")
    for output in logging.getLogger().handlers:
        output.addFilter(handlers.ObjectLogs())
    api = kube.ApiKube(kube.load_configuration(), timeout=settings.request_timeout_seconds)
    metrics = opmetrics.Metrics()
    with opmetrics.serving(metrics, settings.http_host, settings.http_port):
        elector = elector_of(settings, api, metrics)
        if elector is not None:
            elector.acquire(threading.Event())
        wait_for_the_crd(api)
        shared = handlers.Runtime(settings, api, metrics, elector)
        kopf.run(
            clusterwide=settings.clusterwide,
            namespaces=list(settings.namespaces),
            standalone=True,
            identity=cast(Any, settings.identity),  # kopf's Identity is a NewType of str
            stop_flag=shared.stop,
            memo=kopf.Memo(runtime=shared),
        )
    if shared.lost:
        sys.exit(1)


if __name__ == "__main__":
    main()
