"""CPU profile of a resume storm on one gateway: where a resume's CPU goes.

Runs the ``storm-pod`` benchmark's storm (bench/scenarios/storm_pod.py, the
clients of bench/storm): N clients on gateway A (core 1, with this process
and Redis), each holding an offset in its ``org`` and ``user:`` rooms; A is
SIGKILLed and every client resumes onto gateway B (core 0, admission opened
wide unless ``--defaults``) with ``auth.since``, so B reads both rooms'
history and replays what each client missed while events keep coming.
py-spy samples B for the whole storm; the script prints B's CPU per resume
and the self and inclusive shares of the samples (``connect_storm.top``).

    PYTHONPATH=. .venv/bin/python profiles/resume_storm.py 5000 --out /tmp/resume.txt
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import connect_storm

from bench import procs
from bench.scenarios import storm_pod
from fleetcast.devtools.redis import RedisServer

SERVER_CORE, LOAD_CORE = 0, 1


@contextlib.contextmanager
def py_spy(out: Path, pid: int) -> Iterator[None]:
    """py-spy recording ``pid`` (raw collapsed stacks into ``out``) while the block runs."""
    spy = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "py-spy"),
            *("record", "-r", "250", "--format", "raw", "-o", str(out)),
            *("-p", str(pid), "--nonblocking"),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(2)
        spy.wait(30)


async def storm(clients: int, out: Path | None, defaults: bool) -> None:
    os.sched_setaffinity(0, {LOAD_CORE})  # Redis inherits it; B has core 0 to itself
    redis = RedisServer().start()
    env = storm_pod.B_ADMISSION if defaults else dict(storm_pod.ADMISSIONS["opened wide"])
    try:
        done = await storm_pod.storm_onto(
            redis.url,
            ((LOAD_CORE,), (SERVER_CORE,)),
            Path(tempfile.mkdtemp(prefix="resume-storm-")),
            clients,
            env,
            watch=None if out is None else lambda pid: py_spy(out, pid),
        )
    finally:
        redis.cleanup()
    report, cpu, times = done.report, done.cpu_s, done.report.time_to
    print(
        f"{report.reconnected:,}/{report.connected_before:,} resumed (primed: {done.primed}); "
        f"50/99/100%: {times['50%']} / {times['99%']} / {times['100%']} s; "
        f"503s {report.overloaded:,}, failed attempts {report.connect_failures:,}; "
        f"lost {report.lost}, duplicates {report.duplicates}, gaps {report.not_recovered}; "
        f"gateway B CPU {cpu:.2f} s, {1e6 * cpu / max(1, report.reconnected):,.0f} µs per resume, "
        f"waited for a core {done.waited_pct:.0f}% of the storm"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("clients", type=int, nargs="?", default=5000)
    parser.add_argument("--out", type=Path, default=Path("resume-storm.txt"))
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--defaults", action="store_true", help="B's default admission")
    parser.add_argument("--no-spy", action="store_true", help="the storm's figures only")
    args = parser.parse_args()
    procs.raise_fd_limit()
    asyncio.run(storm(args.clients, None if args.no_spy else args.out, args.defaults))
    if not args.no_spy:
        connect_storm.top(args.out, args.top)


if __name__ == "__main__":
    main()
