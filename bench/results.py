"""What a scenario measured, as plain data the report renders and the raw JSON keeps."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from bench.stats import LatencySummary


@dataclass(frozen=True, slots=True)
class Connections:
    """K clients connecting and subscribing to one server, then sitting idle."""

    scenario: str
    server: str
    clients: int
    connected: int
    failed: int
    errors: dict[str, int]
    connect_s: float
    handshake_cpu_us: float
    rss_base: int
    rss_loaded: int
    rss_per_conn: float
    #: Server CPU while the K clients sit idle (pings, timers, housekeeping).
    idle_cpu_pct: float


@dataclass(frozen=True, slots=True)
class Delivery:
    """One measured publishing phase on one server.

    ``cpu_us_per_delivery`` is the server process's user+sys CPU over the
    window divided by the deliveries the clients counted; ``window_s`` runs
    from the first publish to the last delivery.
    """

    scenario: str
    server: str
    clients: int
    phase: str
    published: int
    offered_per_s: float
    expected: int
    received: int
    lost: int
    duplicated: int
    unexpected: int
    clients_with_loss: int
    lost_by_category: dict[str, int]
    closed_clients: int
    closes: dict[str, int]
    window_s: float
    deliveries_per_s: float
    server_cpu_s: float
    cpu_us_per_delivery: float
    server_cpu_pct: float
    loadgen_cpu_pct: float
    #: Cores busy with other work meanwhile (Redis, publisher, other users of the machine).
    others_cores: float
    #: Share of the phase the server's / load generator's main thread was
    #: runnable but had no CPU: latency measured under contention.
    server_wait_pct: float
    loadgen_wait_pct: float
    latency_us: dict[str, LatencySummary]
    #: Extra copies a per-channel server (Centrifugo) sent clients in several of an
    #: event's rooms: neither deliveries nor duplicates, but in its CPU.
    room_copies: int = 0
    #: Server counters that moved during the phase (reconnects, shed, cut-offs...).
    server_counters: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Table:
    """Figures that fit no standard table (consumer events/s, Redis ingress...)."""

    title: str
    headers: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass(slots=True)
class ScenarioResult:
    name: str
    title: str
    about: str
    connections: list[Connections] = field(default_factory=list)
    deliveries: list[Delivery] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = _finite(asdict(self))
        return doc


def _finite(value: Any) -> Any:
    """NaN is not JSON: write ``null`` for a figure that could not be measured."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value
