"""Prometheus metrics of one gateway app, in a registry of its own.

A registry per app (not the global one) lets tests run two gateways in one
process and read each one's figures apart.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

NS = "fleetcast_gateway"
#: Delivery latency buckets (seconds): sub-millisecond to multi-second.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)


class Metrics:
    """Every metric the gateway exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.connections = Gauge(f"{NS}_connections", "Open client connections", registry=r)
        self.connects = Counter(f"{NS}_connects", "Accepted connections", registry=r)
        self.disconnects = Counter(
            f"{NS}_disconnects", "Closed connections by reason", ["reason"], registry=r
        )
        self.refusals = Counter(
            f"{NS}_connect_refusals", "Refused handshakes by code", ["code"], registry=r
        )
        self.auth_failures = Counter(
            f"{NS}_auth_failures",
            "Token refusals (connect and refresh) by code",
            ["code"],
            registry=r,
        )
        self.subscribes = Counter(
            f"{NS}_subscribes", "Subscribe requests by result", ["result"], registry=r
        )
        self.recoveries = Counter(
            f"{NS}_recoveries", "Subscribes with since by outcome", ["result"], registry=r
        )
        self.deliveries = Counter(f"{NS}_deliveries", "Frames handed to connections", registry=r)
        self.events = Counter(f"{NS}_events", "Routed events delivered to local rooms", registry=r)
        self.latency = Histogram(
            f"{NS}_delivery_latency_seconds",
            "From the event's occurred_at to its delivery to local connections, by category"
            " (priority: every type but positions; position)",
            ["category"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.shed = Counter(
            f"{NS}_positions_shed", "Positions dropped for slow clients", registry=r
        )
        self.redis_messages = Counter(
            f"{NS}_redis_messages", "Pub/sub messages received per org", ["org"], registry=r
        )
        self.wire_errors = Counter(f"{NS}_wire_errors", "Unreadable pub/sub messages", registry=r)
        self.subscribed_orgs = Gauge(
            f"{NS}_subscribed_orgs", "Org channels this gateway listens to", registry=r
        )
        self.redis_connected = Gauge(
            f"{NS}_redis_connected", "1 while the pub/sub listener is connected", registry=r
        )
        self.redis_reconnects = Counter(
            f"{NS}_redis_reconnects", "Pub/sub listener (re)connections", registry=r
        )
        self.canary_ok = Gauge(f"{NS}_canary_ok", "1 when the last canary came back", registry=r)
        self.canary_failures = Counter(f"{NS}_canary_failures", "Canaries lost", registry=r)
        self.canary_rtt = Gauge(
            f"{NS}_canary_rtt_seconds", "Round trip of the last canary", registry=r
        )
        self.gaps = Counter(
            f"{NS}_pubsub_gaps",
            "Gaps in an org's pub/sub messages noticed, by how",
            ["reason"],
            registry=r,
        )
        self.gap_recoveries = Counter(
            f"{NS}_gap_recoveries",
            "Gap recovery passes by reason and result (complete, resync, failed)",
            ["reason", "result"],
            registry=r,
        )
        self.recovered_events = Counter(
            f"{NS}_gap_recovered_events", "Events replayed from history after a gap", registry=r
        )
        self.resyncs = Counter(
            f"{NS}_resyncs", "resync events sent (history no longer reached back)", registry=r
        )
        self.recovery_seconds = Histogram(
            f"{NS}_gap_recovery_seconds",
            "From a gap recovery's start to its live events released",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.violations = Counter(
            f"{NS}_client_violations",
            "Clients cut off for breaking a limit (transport/guard.py), by code",
            ["code"],
            registry=r,
        )
        self.protocol_errors = Counter(
            f"{NS}_client_protocol_errors",
            "Client packets that were not readable Socket.IO",
            registry=r,
        )
        self.controls = Counter(
            f"{NS}_control_messages",
            "Control messages acted on (revoke, withdraw)",
            ["action"],
            registry=r,
        )
        self.state_snapshots = Counter(
            f"{NS}_state_snapshots", "State snapshots sent (incidents, alerts, tasks)", registry=r
        )
        self.state_snapshot_seconds = Histogram(
            f"{NS}_state_snapshot_seconds",
            "From a state request to its snapshots handed to the connection",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.ready = Gauge(f"{NS}_ready", "1 when /ready answers 200", registry=r)
        self.draining = Gauge(f"{NS}_draining", "1 after SIGTERM", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
