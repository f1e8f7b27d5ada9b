"""The markdown report: pure rendering of scenario results (unit tested).

Figures are rounded for reading; the raw JSON next to the report keeps them
whole. A figure that could not be measured prints as ``-``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bench import stats
from bench.results import Connections, Delivery, ScenarioResult, Table

REFERENCE = "socket.io"
SUBJECT = "fleetcast"
#: The peer every server is also compared with when it ran (Go, both cores).
PEER = "centrifugo"


@dataclass(frozen=True, slots=True)
class RunInfo:
    """Where and how the figures were made."""

    command: str
    started: str
    duration_s: float
    machine: str
    cpu_plan: str
    versions: dict[str, str] = field(default_factory=dict)


def num(value: float | None, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and (math.isnan(value) or math.isinf(value))):
        return "-"
    if digits == 0:
        return f"{value:,.0f}"
    return f"{value:,.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def connections_table(items: Sequence[Connections]) -> str:
    headers = ["server", "K", "connected", "failed", "connect s", "connects/s", "handshake CPU µs"]
    headers += ["RSS base MB", "RSS/conn KB", "idle CPU %"]
    rows = [
        [
            c.server,
            f"{c.clients:,}",
            f"{c.connected:,}",
            _failed(c.failed, c.errors),
            num(c.connect_s, 1),
            num(connect_rate(c), 0),
            num(c.handshake_cpu_us, 0),
            num(c.rss_base / 2**20, 1),
            num(c.rss_per_conn / 1024, 1),
            num(c.idle_cpu_pct, 1),
        ]
        for c in items
    ]
    return markdown_table(headers, rows)


def connect_rate(c: Connections) -> float:
    """Clients connected and subscribed per second of the connect step (100 in flight)."""
    return stats.rate(c.connected, c.connect_s)


def _failed(count: int, errors: dict[str, int]) -> str:
    if not count:
        return "0"
    return f"{count:,} ({', '.join(f'{k}: {v}' for k, v in sorted(errors.items()))})"


def deliveries_table(items: Sequence[Delivery]) -> str:
    headers = ["server", "K", "phase", "events", "deliveries", "lost", "dup", "room copies"]
    headers += ["leaked", "cut off"]
    headers += ["deliveries/s", "CPU µs/delivery", "server CPU %", "loadgen CPU %"]
    headers += ["server/loadgen waited %", "others cores"]
    headers += ["p50 ms", "p99 ms", "max ms"]
    rows = []
    for d in items:
        lat = d.latency_us["all"]
        rows.append(
            [
                d.server,
                f"{d.clients:,}",
                d.phase,
                f"{d.published:,}",
                f"{d.received:,}",
                _lost(d),
                f"{d.duplicated:,}",
                f"{d.room_copies:,}",
                f"{d.unexpected:,}",
                f"{d.closed_clients:,}",
                num(d.deliveries_per_s, 0),
                num(d.cpu_us_per_delivery, 1),
                num(d.server_cpu_pct, 0),
                num(d.loadgen_cpu_pct, 0),
                f"{num(d.server_wait_pct, 0)} / {num(d.loadgen_wait_pct, 0)}",
                num(d.others_cores, 2),
                num(lat.p50 / 1000, 2),
                num(lat.p99 / 1000, 2),
                num(lat.max / 1000, 1),
            ]
        )
    return markdown_table(headers, rows)


def _lost(d: Delivery) -> str:
    if not d.lost:
        return "0"
    parts = ", ".join(f"{k} {v:,}" for k, v in d.lost_by_category.items() if v)
    return f"**{d.lost:,}** ({parts})"


def latency_by_category(items: Sequence[Delivery]) -> str:
    """Per-category latency, for scenarios that mix priority events and positions."""
    headers = [
        "server",
        "K",
        "phase",
        "category",
        "count",
        "p50 ms",
        "p99 ms",
        "p99.9 ms",
        "max ms",
    ]
    rows = []
    for d in items:
        for category, lat in d.latency_us.items():
            if category == "all" or not lat.count:
                continue
            rows.append(
                [d.server, f"{d.clients:,}", d.phase, category, f"{lat.count:,}"]
                + [num(v / 1000, 2) for v in (lat.p50, lat.p99, lat.p999, lat.max)]
            )
    return markdown_table(headers, rows)


def counter_lines(items: Sequence[Delivery]) -> str:
    lines = []
    for d in items:
        if d.server_counters:
            moved = ", ".join(f"`{k}` +{v:,.0f}" for k, v in sorted(d.server_counters.items()))
            lines.append(f"- {d.server} K={d.clients:,} {d.phase}: {moved}")
    return "\n".join(lines)


def _mixed(d: Delivery) -> bool:
    """True when a phase carried more than one category of events."""
    return sum(1 for k, v in d.latency_us.items() if k != "all" and v.count) > 1


@dataclass(frozen=True, slots=True)
class Ratio:
    clients: int
    phase: str
    cpu: float
    rss: float
    p99: float
    rate: float
    #: connects/s of the subject over the reference's (above 1.00x is better)
    connects: float = math.nan
    subject: str = SUBJECT
    reference: str = REFERENCE


def ratios(
    result: ScenarioResult, subject: str = SUBJECT, reference: str = REFERENCE
) -> list[Ratio]:
    """``subject`` / ``reference`` for every (K, phase) both servers measured."""
    conns = {(c.server, c.clients): c for c in result.connections}
    by_key = {(d.server, d.clients, d.phase): d for d in result.deliveries}
    out = []
    for (server, k, phase), ours in by_key.items():
        ref = by_key.get((reference, k, phase))
        if server != subject or ref is None:
            continue
        c_ours, c_ref = conns.get((subject, k)), conns.get((reference, k))
        rss = connects = math.nan
        if c_ours and c_ref:
            rss = stats.ratio(c_ours.rss_per_conn, c_ref.rss_per_conn)
            connects = stats.ratio(connect_rate(c_ours), connect_rate(c_ref))
        out.append(
            Ratio(
                clients=k,
                phase=phase,
                cpu=stats.ratio(ours.cpu_us_per_delivery, ref.cpu_us_per_delivery),
                rss=rss,
                p99=stats.ratio(ours.latency_us["all"].p99, ref.latency_us["all"].p99),
                rate=stats.ratio(ours.deliveries_per_s, ref.deliveries_per_s),
                connects=connects,
                subject=subject,
                reference=reference,
            )
        )
    return out


def all_ratios(result: ScenarioResult) -> list[Ratio]:
    """fleetcast / socket.io, then fleetcast and socket.io / Centrifugo where it ran."""
    found = ratios(result)
    for subject in (SUBJECT, REFERENCE):
        found += ratios(result, subject, PEER)
    return found


def ratios_table(items: Sequence[Ratio]) -> str:
    headers = ["K", "phase", "CPU/delivery", "RSS/conn", "p99 latency", "deliveries/s"]
    headers += ["connects/s"]
    rows = [
        [
            f"{r.clients:,}",
            r.phase,
            ratio_text(r.cpu),
            ratio_text(r.rss),
            ratio_text(r.p99),
            ratio_text(r.rate),
            ratio_text(r.connects),
        ]
        for r in items
    ]
    return markdown_table(headers, rows)


def ratio_text(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.2f}x"


def custom_table(table: Table) -> str:
    text = f"**{table.title}**\n\n{markdown_table(table.headers, table.rows)}"
    return f"{text}\n\n{table.note}" if table.note else text


def scenario_section(result: ScenarioResult) -> str:
    parts = [f"## {result.name}: {result.title}", result.about]
    if result.error:
        parts.append(f"**Not measured:** {result.error}")
    if result.connections:
        parts.append(
            "Connections (K idle subscribed clients):\n\n" + connections_table(result.connections)
        )
    if result.deliveries:
        parts.append("Deliveries:\n\n" + deliveries_table(result.deliveries))
        moved = counter_lines(result.deliveries)
        if moved:
            parts.append("Server counters that moved during a phase:\n\n" + moved)
        if any(_mixed(d) for d in result.deliveries):
            parts.append("Latency by category:\n\n" + latency_by_category(result.deliveries))
    found = all_ratios(result)
    for pair in dict.fromkeys((r.subject, r.reference) for r in found):
        picked = [r for r in found if (r.subject, r.reference) == pair]
        parts.append(
            f"Ratios {pair[0]} / {pair[1]} (below 1.00x is better; connects/s: above):\n\n"
            + ratios_table(picked)
        )
    parts += [custom_table(t) for t in result.tables]
    parts += [f"- {note}" for note in result.notes]
    return "\n\n".join(p for p in parts if p)


def render(info: RunInfo, results: Sequence[ScenarioResult]) -> str:
    versions = ", ".join(f"{k} {v}" for k, v in info.versions.items())
    head = [
        "# fleetcast benchmark report",
        f"Command: `{info.command}`  \n"
        f"Started: {info.started}, took {info.duration_s / 60:.1f} min  \n"
        f"Machine: {info.machine}  \nCores: {info.cpu_plan}  \nVersions: {versions}",
        "CPU µs/delivery = server process user+sys CPU over the phase / deliveries counted by "
        "the clients. RSS/conn = (server RSS with K idle clients - RSS before) / K. Latency = "
        "publish (or Kafka produce) to client receive, monotonic clock. lost = expected "
        "deliveries that never came (must be 0); deliveries count a (client, event) pair once, "
        "at its first copy; dup = further copies; room copies = the extra copies a per-channel "
        "server (Centrifugo's broadcast) sends a client in several of an event's rooms (not "
        "deliveries, not duplicates; their cost is in its CPU); "
        "leaked = deliveries to a client outside the "
        "event's rooms; cut off = clients the server disconnected during the phase; "
        "waited % = share of the phase the server's (load generator's) event loop was "
        "runnable but had no CPU, "
        "i.e. how far contention skews latency; others cores = "
        "CPU used meanwhile by everything else on the machine (Redis, publisher, other users): "
        "the noise.",
    ]
    return "\n\n".join(head + [scenario_section(r) for r in results]) + "\n"


def ratio_lines(results: Sequence[ScenarioResult]) -> list[str]:
    """One line per measured ratio, for the terminal."""
    lines = []
    for result in results:
        for r in all_ratios(result):
            lines.append(
                f"{result.name:<12} K={r.clients:<6,} {r.phase:<6} {r.subject}/{r.reference}: "
                f"CPU/delivery {ratio_text(r.cpu)}  RSS/conn {ratio_text(r.rss)}  "
                f"p99 {ratio_text(r.p99)}  "
                f"deliveries/s {ratio_text(r.rate)}  connects/s {ratio_text(r.connects)}"
            )
    return lines
