"""``python -m tests.faults.report``: the fault suite's scenarios for 60 s each, and the table.

Runs every fault of :data:`tests.faults.scenarios.FAULTS` (or those named with
``--fault``) against a fresh stack on a Kafka broker of its own, 60 s of
traffic at 200 events/s each (``--quick``: the suite's ~10 s), prints one line
per fault, and records the outcomes in docs/reliability.json; the table of
docs/reliability.md (between its ``faults-table`` markers) is rendered from
that file, so a partial run replaces only its own rows. Each row names the
commit it was measured on and the command that measures it again.

    .venv/bin/python -m tests.faults.report                      # ~15 min
    .venv/bin/python -m tests.faults.report --fault pubsub-kill  # one row
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Final

import orjson

from fleetcast.devtools import kafka
from tests.faults import scenarios

ROOT: Final = Path(__file__).resolve().parents[2]
DOC: Final = ROOT / "docs" / "reliability.md"
DATA: Final = ROOT / "docs" / "reliability.json"
BEGIN: Final = "<!-- faults-table: begin (python -m tests.faults.report writes it) -->"
END: Final = "<!-- faults-table: end -->"
COMMAND: Final = ".venv/bin/python -m tests.faults.report"


def commit() -> str:
    """The short commit of the working tree, ``+dirty`` when it has uncommitted changes."""

    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True).stdout

    mine = (f":!{DOC.relative_to(ROOT)}", f":!{DATA.relative_to(ROOT)}")  # what a run writes
    dirty = git("status", "--porcelain", "--", ".", *mine).strip()
    return git("rev-parse", "--short", "HEAD").strip() + ("+dirty" if dirty else "")


def row_data(outcome: scenarios.Outcome, timing: scenarios.Timing, code: str) -> dict[str, Any]:
    return {
        "outcome": dataclasses.asdict(outcome),
        "timing": dataclasses.asdict(timing),
        "code": code,
        "date": time.strftime("%Y-%m-%d"),
    }


def _seconds(value: float | None, bound: float) -> str:
    return f"never (> {bound:g} s)" if value is None else f"{value:.2f} s"


def did(outcome: Mapping[str, Any], bound: float) -> str:
    """What the system did, from what the clients saw and the processes reported."""
    t = outcome["totals"]
    parts = [outcome["did"] + ";"]
    if t["reconnects"]:
        refused = t.get("connect_refusals", 0)
        also = f" ({refused} handshakes refused first)" if refused else ""
        parts.append(f"{t['reconnects']} reconnections to the other gateway{also};")
    else:
        parts.append("clients stayed connected;")
    parts.append(f"{t['resyncs']} resync, {t['announcements']} room gaps announced;")
    if t.get("superseded"):
        parts.append(f"{t['superseded']} positions replayed as their asset's latest only;")
    if t["recovery_s"] is None:
        parts.append(f"some clients got no new event for {bound:g} s (stalled);")
    exited = set(outcome["exited"])
    if exited:
        parts.append(f"not running at the end: {', '.join(sorted(exited))};")
    down = [f"{name} {s:g} s" for name, s in outcome["not_ready_s"].items()
            if s and name not in exited]  # fmt: skip
    others = " of the others" if exited else ""
    parts.append(f"/ready 503: {', '.join(down)};" if down else f"/ready{others} stayed 200;")
    if outcome["failed_sends"]:
        parts.append(f"{outcome['failed_sends']} producer sends failed (not counted);")
    moved = [f"{_short(name)} +{value:g}" for name, value in sorted(outcome["counters"].items())]
    if moved:
        parts.append(f"counters: {', '.join(moved)}")
    return " ".join(parts).rstrip(";")


def _short(sample: str) -> str:
    return sample.replace("fleetcast_gateway_", "").replace("fleetcast_consumer_", "")


def table(rows: Mapping[str, Mapping[str, Any]]) -> str:
    """The markdown table, one row per fault in the suite's order."""
    lines = [
        "| fault or bad input | what the system did | lost / expected | announced "
        "| duplicates | recovery | measured on, command |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for fault in scenarios.FAULTS:
        if fault.id not in rows:
            lines.append(
                f"| {fault.title} | not measured yet | | | | | `{COMMAND} --fault {fault.id}` |"
            )
            continue
        row = rows[fault.id]
        outcome, t = row["outcome"], row["outcome"]["totals"]
        bound = row["timing"]["recover_within_s"]
        lines.append(
            f"| {fault.title} | {did(outcome, bound)} | **{t['lost']:,}** / {t['expected']:,} "
            f"| {t['announced']:,} | {t['duplicates']:,} ({t['cross_room']:,} via another room) "
            f"| {_seconds(t['recovery_s'], bound)} "
            f"| `{row['code']}` {row['date']}, {outcome['traffic_s']:g} s at "
            f"{outcome['rate']:g} ev/s: `{COMMAND} --fault {fault.id}` |"
        )
    return "\n".join(lines)


def rewrite(doc: str, rendered: str) -> str:
    """``doc`` with the text between the markers replaced by ``rendered``."""
    head, sep, rest = doc.partition(BEGIN)
    _, sep2, tail = rest.partition(END)
    if not sep or not sep2:
        raise ValueError(f"{DOC.name} lacks the table markers")
    return f"{head}{BEGIN}\n{rendered}\n{END}{tail}"


async def measure(
    broker: kafka.KafkaBroker, faults: Sequence[scenarios.Fault], timing: scenarios.Timing,
    log_dir: Path,
) -> list[scenarios.Outcome]:  # fmt: skip
    outcomes = []
    for fault in faults:
        outcome = await scenarios.run(fault, broker, log_dir, timing)
        print(scenarios.summary(outcome), flush=True)
        outcomes.append(outcome)
    return outcomes


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tests.faults.report", description=__doc__)
    parser.add_argument("--fault", action="append", choices=sorted(scenarios.BY_ID),
                        help="run only this fault (again for several)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="the suite's timing (~10 s)")
    parser.add_argument("--no-write", action="store_true", help="print, write no file")
    parser.add_argument("--logs", type=Path, help="keep the processes' logs in this folder")
    parser.add_argument("--render-only", action="store_true",
                        help=f"run nothing: render the table again from {DATA.name}")  # fmt: skip
    args = parser.parse_args(argv)
    if args.render_only:
        write({})
        return
    faults = [scenarios.BY_ID[i] for i in args.fault] if args.fault else list(scenarios.FAULTS)
    timing = scenarios.SUITE if args.quick else scenarios.REPORT
    code = commit()
    with tempfile.TemporaryDirectory(prefix="fleetcast-faults-") as tmp:
        log_dir = args.logs or Path(tmp)
        log_dir.mkdir(parents=True, exist_ok=True)
        # The producer's reconnect warnings while a broker restarts go with the other logs.
        logging.basicConfig(filename=log_dir / "report.log", level=logging.INFO)
        with kafka.KafkaBroker.create() as broker:
            outcomes = asyncio.run(measure(broker, faults, timing, log_dir))
    if not args.no_write:
        write({o.fault: row_data(o, timing, code) for o in outcomes})


def write(new_rows: Mapping[str, Mapping[str, Any]]) -> None:
    """Merge ``new_rows`` into the recorded outcomes and render the doc's table from them."""
    rows = orjson.loads(DATA.read_bytes()) if DATA.exists() else {}
    rows.update(new_rows)
    DATA.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    DOC.write_text(rewrite(DOC.read_text(), table(rows)))
    print(f"wrote {DOC.relative_to(ROOT)} and {DATA.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
