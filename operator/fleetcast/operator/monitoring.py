"""A prometheus-operator PodMonitor for the gateway and consumer pods, when the spec asks. Pure.

One PodMonitor selects every pod of the FleetBroadcast and scrapes
``/metrics`` on the port each container names (``http``; ``consumer`` for a
sidecar). Prometheus adds the ``namespace`` and ``pod`` labels the KEDA
connections query (:func:`.scaling.connections_query`) relies on.
"""

from __future__ import annotations

from fleetcast.operator.objects import MONITORING_API, Manifest, Owner, name_of, owned_object
from fleetcast.operator.spec import FleetBroadcastSpec


def monitors(spec: FleetBroadcastSpec, owner: Owner) -> list[Manifest]:
    wanted = spec.monitoring.pod_monitor
    if not wanted.enabled:
        return []
    manifest = owned_object(
        MONITORING_API, "PodMonitor", name_of(owner, "pods"), owner, "monitoring"
    )
    manifest["metadata"]["labels"] = {**(wanted.labels or {}), **manifest["metadata"]["labels"]}
    ports = ["http", "consumer"] if spec.consumer.placement == "sidecar" else ["http"]
    endpoints = [{"port": port, "path": "/metrics", "interval": wanted.interval} for port in ports]
    manifest["spec"] = {
        "selector": {
            "matchLabels": {
                "app.kubernetes.io/name": "fleetcast",
                "app.kubernetes.io/instance": owner.name,
            }
        },
        "podMetricsEndpoints": endpoints,
    }
    return [manifest]
