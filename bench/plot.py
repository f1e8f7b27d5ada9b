"""The PNG: CPU per delivery and p99 latency against client count, per server.

One row per scenario that measured deliveries at several client counts (or
at least one), lines per server and phase. matplotlib's Agg backend: no display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # the backend must be chosen first

from bench.results import ScenarioResult

COLORS = {"fleetcast": "tab:blue", "socket.io": "tab:orange"}
STYLES = {"paced": "-", "burst": "--"}


def plot(results: Sequence[ScenarioResult], path: Path) -> bool:
    """Write the figure; ``False`` (and no file) when nothing was measured."""
    measured = [r for r in results if r.deliveries]
    # "against client count": scenarios measured at one K only join when none has more
    shown = [r for r in measured if len({d.clients for d in r.deliveries}) > 1] or measured
    if not shown:
        return False
    fig, axes = plt.subplots(len(shown), 2, figsize=(11, 3.6 * len(shown)), squeeze=False)
    for row, result in zip(axes, shown, strict=True):
        cpu_ax, lat_ax = row
        series: dict[tuple[str, str], list[tuple[int, float, float]]] = {}
        for d in result.deliveries:
            point = (d.clients, d.cpu_us_per_delivery, d.latency_us["all"].p99 / 1000)
            series.setdefault((d.server, d.phase), []).append(point)
        for (server, phase), points in sorted(series.items()):
            points.sort()
            ks = [p[0] for p in points]
            style = dict(color=COLORS.get(server), linestyle=STYLES.get(phase, ":"), marker="o")
            cpu_ax.plot(ks, [p[1] for p in points], label=f"{server} {phase}", **style)
            lat_ax.plot(ks, [p[2] for p in points], label=f"{server} {phase}", **style)
        cpu_ax.set_title(f"{result.name}: server CPU per delivery")
        cpu_ax.set_xlabel("clients")
        cpu_ax.set_ylabel("µs / delivery")
        cpu_ax.set_ylim(bottom=0)
        lat_ax.set_title(f"{result.name}: p99 publish→client latency")
        lat_ax.set_xlabel("clients")
        lat_ax.set_ylabel("ms")
        lat_ax.set_yscale("log")
        for ax in row:
            ax.grid(True, alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
