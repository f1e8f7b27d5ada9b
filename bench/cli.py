"""``python -m bench``: run scenarios, print the ratios, write the report and plot.

Every run keeps its report, raw data, JSON and server logs under
``bench/results/raw/<timestamp>/`` (git-ignored). A full default run (every
scenario, default sizes, not ``--quick``), or any run with ``--publish``, also
replaces the committed ``bench/results/report.md`` and ``report.png``: a
partial run never overwrites the full picture by accident.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import logging
import os
import platform
import shlex
import shutil
import signal
import sys
import time
import traceback
from collections.abc import Sequence
from pathlib import Path

import orjson

from bench import checkout, procs, registry, report, servers
from bench.context import SERVER_NAMES, Context, Options
from bench.results import ScenarioResult

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_RATE = 20_000.0


def parse(argv: Sequence[str]) -> Options:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--scenario",
        action="append",
        help="scenario(s) to run, comma-separated or repeated "
        f"(default all: {', '.join(registry.names())})",
    )
    parser.add_argument(
        "--clients",
        help="client counts K for every scenario, e.g. 1000,5000 (default: each scenario's "
        "own, fanout 1000,5000,10000, mix 1000,5000, whole path 1000; quick 1000)",
    )
    parser.add_argument("--servers", default=",".join(SERVER_NAMES), help="servers to compare")
    parser.add_argument("--quick", action="store_true", help="short smoke run (K=1000, 2 s phases)")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="write bench/results/report.md even for a partial run (a full run always does)",
    )
    parser.add_argument(
        "--rate", type=float, help=f"offered deliveries/s in paced phases ({DEFAULT_RATE:,.0f})"
    )
    parser.add_argument("--seconds", type=float, help="length of a paced phase (5; quick 2)")
    parser.add_argument(
        "--nice",
        type=int,
        default=0,
        help="niceness of the whole run, inherited by every process it starts; below 0 "
        "(needs CAP_SYS_NICE) it keeps other work on a shared machine from skewing latency",
    )
    args = parser.parse_args(argv)
    scenarios = [n for item in args.scenario or registry.names() for n in item.split(",") if n]
    for name in scenarios:
        if name not in registry.MODULES:
            parser.error(f"unknown scenario {name!r} (known: {', '.join(registry.names())})")
    clients = tuple(int(k) for k in args.clients.split(",")) if args.clients else None
    names = tuple(s for s in args.servers.split(",") if s)
    for name in names:
        if name not in SERVER_NAMES:
            parser.error(f"unknown server {name!r} (known: {', '.join(SERVER_NAMES)})")
    return Options(
        scenarios=tuple(scenarios),
        clients=clients,
        servers=names,
        quick=args.quick,
        rate=args.rate or DEFAULT_RATE,
        seconds=args.seconds or (2.0 if args.quick else 5.0),
        nice=args.nice,
        publish=args.publish
        or (not args.quick and not args.clients and scenarios == registry.names()),
    )


async def run_all(ctx: Context) -> list[ScenarioResult]:
    results = []
    first = checkout.fingerprint()
    for name in ctx.options.scenarios:
        scenario = registry.load(name)
        print(f"== {name}: {scenario.title}", flush=True)
        started = time.monotonic()
        result = ScenarioResult(name, scenario.title, scenario.about)
        code = checkout.fingerprint()
        try:
            await scenario.run(ctx, result)
        except Exception as exc:
            (ctx.raw_dir / f"{name}-error.txt").write_text(traceback.format_exc())
            result.error = f"{type(exc).__name__}: {exc}".strip()[:600]
            print(f"   failed: {result.error}", flush=True)
        after = checkout.fingerprint()
        if after != code:
            result.notes.append(
                f"**The shipped code changed while this scenario ran** ({code} → {after}): "
                "its rows may come from two versions."
            )
        elif code != first:
            result.notes.append(f"Measured code {code} differs from the run's start ({first}).")
        print(f"   {time.monotonic() - started:.0f}s", flush=True)
        (ctx.raw_dir / f"{name}.json").write_bytes(
            orjson.dumps(result.to_json(), option=orjson.OPT_INDENT_2)
        )
        results.append(result)
    return results


def machine() -> str:
    model = "?"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return f"{model}, {os.cpu_count()} cores, {mem:.0f} GiB, Linux {platform.release()}"


def versions(opts: Options) -> dict[str, str]:
    found = {"python": platform.python_version()}
    found["fleetcast"] = f"{checkout.describe()} (fingerprint {checkout.fingerprint()})"
    if "socket.io" in opts.servers and shutil.which("node"):
        found |= servers.node_versions()
    if "centrifugo" in opts.servers:
        found["centrifugo"] = servers.centrifugo_version()
    return found


def _interrupt(signum: int, _frame: object) -> None:
    """SIGTERM unwinds like Ctrl-C, so every process the run started is stopped."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.WARNING, format="   %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.ERROR)  # retries while leaders settle
    procs.raise_fd_limit()
    plan = procs.CpuPlan.detect()
    procs.pin_self(plan.rest)  # children (Redis, Kafka, load generator) inherit these cores
    nice = procs.renice_self(opts.nice)
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    raw_dir = RESULTS / "raw" / stamp
    raw_dir.mkdir(parents=True, exist_ok=True)
    command = "python -m bench " + shlex.join(sys.argv[1:] if argv is None else argv)
    print(f"bench: {command}\nbench: {plan.describe()}\nbench: raw data in {raw_dir}", flush=True)
    started_wall, started = dt.datetime.now().isoformat(timespec="seconds"), time.monotonic()
    measured = versions(opts)  # the code as the run starts; scenarios note any change
    ctx = Context(opts, plan, raw_dir)
    signal.signal(signal.SIGTERM, _interrupt)
    try:
        results = asyncio.run(run_all(ctx))
    finally:
        procs.stop_all()
        ctx.close()
    info = report.RunInfo(
        command=command.strip(),
        started=started_wall,
        duration_s=time.monotonic() - started,
        machine=machine(),
        cpu_plan=plan.describe()
        + (
            "; centrifugo on every core (Go, GOMAXPROCS = cores)"
            if "centrifugo" in opts.servers
            else ""
        )
        + (f"; every process at nice {nice}" if nice else ""),
        versions=measured,
    )
    write(info, results, raw_dir, publish=opts.publish)
    return 1 if any(r.error for r in results) else 0


def write(
    info: report.RunInfo, results: list[ScenarioResult], raw_dir: Path, *, publish: bool
) -> None:
    from bench import plot  # matplotlib: only when there is something to draw

    text = report.render(info, results)
    (raw_dir / "report.md").write_text(text)
    has_plot = plot.plot(results, raw_dir / "report.png")
    if publish:
        (RESULTS / "report.md").write_text(text)
        if has_plot:
            shutil.copyfile(raw_dir / "report.png", RESULTS / "report.png")
    print("\n".join(["", *report.ratio_lines(results)]) or "no ratios measured")
    for table in (t for r in results for t in r.tables):
        print(f"\n{report.custom_table(table)}")
    where = RESULTS if publish else raw_dir
    print(
        f"bench: report {where / 'report.md'}"
        + (f", plot {where / 'report.png'}" if has_plot else "")
    )
