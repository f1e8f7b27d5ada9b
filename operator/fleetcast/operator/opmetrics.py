"""The operator's own metrics and its HTTP endpoint (/healthz, /metrics).

Names follow ``fleetcast_operator_*``: reconcile duration and outcomes by
trigger, errors by reason, how many reconciles run and wait (the work queue:
one FleetBroadcast is reconciled by one thread at a time, the others wait),
objects repaired, status writes, and whether this replica leads. The
endpoint runs for the whole process, leader or standby, in one thread owned
by ``__main__`` (started before the election, shut down on exit), so the
kubelet's liveness probe and Prometheus see a standby too.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

DURATION_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.duration = Histogram(
            "fleetcast_operator_reconcile_duration_seconds",
            "Time to reconcile one FleetBroadcast, by what triggered it",
            ["trigger"],
            buckets=DURATION_BUCKETS,
            registry=r,
        )
        self.reconciles = Counter(
            "fleetcast_operator_reconciles",
            "Reconciles by trigger and result",
            ["trigger", "result"],
            registry=r,
        )
        self.errors = Counter(
            "fleetcast_operator_reconcile_errors",
            "Reconciles that did not apply everything, by reason",
            ["reason"],
            registry=r,
        )
        self.in_flight = Gauge(
            "fleetcast_operator_reconciles_in_flight", "Reconciles running now", registry=r
        )
        self.waiting = Gauge(
            "fleetcast_operator_reconciles_waiting",
            "Reconciles and status updates waiting for their FleetBroadcast's lock (the queue)",
            registry=r,
        )
        self.repaired = Counter(
            "fleetcast_operator_objects_repaired",
            "Owned objects repaired, by kind and action (updated, reclaimed, recreated, created)",
            ["kind", "action"],
            registry=r,
        )
        self.status_writes = Counter(
            "fleetcast_operator_status_writes", "FleetBroadcast status writes", registry=r
        )
        self.leader = Gauge(
            "fleetcast_operator_leader", "1 while this replica holds the Lease", registry=r
        )

    @contextlib.contextmanager
    def reconciling(self, trigger: str) -> Iterator[None]:
        """Time one reconcile and count it in flight."""
        started = time.perf_counter()
        self.in_flight.inc()
        try:
            yield
        finally:
            self.in_flight.dec()
            self.duration.labels(trigger).observe(time.perf_counter() - started)


def _handler(metrics: Metrics) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                self._send(200, CONTENT_TYPE_LATEST, generate_latest(metrics.registry))
            elif self.path.startswith("/healthz"):
                self._send(200, "text/plain", b"ok\n")
            else:
                self._send(404, "text/plain", b"not found\n")

        def _send(self, code: int, kind: str, body: bytes) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            """Probes every few seconds: no access log."""

    return Handler


@contextlib.contextmanager
def serving(metrics: Metrics, host: str, port: int) -> Iterator[ThreadingHTTPServer | None]:
    """/healthz and /metrics on host:port for the block (port 0: nothing served)."""
    if port == 0:
        yield None
        return
    server = ThreadingHTTPServer((host, port), _handler(metrics))
    thread = threading.Thread(target=server.serve_forever, name="fleetcast-http", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
