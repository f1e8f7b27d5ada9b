"""CPU profile of new connections on one gateway: where a connect's CPU goes.

Starts Redis and one ``python -m fleetcast.gateway`` (pinned to core 0, the
bench's admission-open settings), attaches py-spy to it, then connects K
fresh clients (upgrade, Engine.IO open, Socket.IO CONNECT with a JWT, one
subscribe: what ``bench`` counts as a connect) ``ROUNDS`` times, closing them
between rounds. Prints the gateway's CPU per connect and writes py-spy's raw
(collapsed) stacks, which ``--top`` folds into self and inclusive shares.

    .venv/bin/python profiles/connect_storm.py 2000 --out /tmp/connect.txt
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import procs, servers
from bench.loadgen.control import LoadGen
from bench.scenarios import common
from fleetcast.devtools.redis import RedisServer

ROUNDS = 3


async def storm(clients: int, out: Path) -> None:
    redis = RedisServer().start()
    log_dir = Path(tempfile.mkdtemp(prefix="connect-storm-"))
    gateway = servers.FleetcastGateway(redis.url, (0,), log_dir)
    loadgen = LoadGen((1,))
    try:
        await gateway.start()
        await loadgen.start()
        spy = subprocess.Popen(  # noqa: ASYNC220 - started once, before the measured rounds
            [
                str(Path(sys.executable).parent / "py-spy"),
                "record",
                "-r",
                "250",
                "--format",
                "raw",
                "-o",
                str(out),
                "-p",
                str(gateway.pid),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
        )
        await asyncio.sleep(1.0)
        for round_no in range(ROUNDS):
            specs = common.client_specs(clients, f"org-storm-{round_no}")
            before = procs.cpu_seconds(gateway.pid)
            done = await loadgen.connect(gateway.host, gateway.port, gateway.path, specs)
            cpu = procs.cpu_seconds(gateway.pid) - before
            print(
                f"round {round_no}: {done.connected} connected in {done.elapsed_s:.2f}s "
                f"({done.connected / done.elapsed_s:,.0f}/s), gateway CPU "
                f"{1e6 * cpu / max(1, done.connected):,.0f} µs per connect"
            )
            await loadgen.close_all()
            await asyncio.sleep(1.0)
        spy.send_signal(2)
        spy.wait(30)
    finally:
        await loadgen.stop()
        gateway.stop()
        redis.cleanup()


def top(raw: Path, count: int) -> None:
    """Self and inclusive shares of the samples, by function (file:line stripped)."""
    inclusive: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():  # a frame name with a newline in it (a traceback's text)
            continue
        frames = [
            f.split(" (")[0] + " (" + f.split(" (")[-1].split(":")[0].rsplit("/", 1)[-1]
            for f in stack.split(";")[1:]
        ]
        weight = int(n)
        total += weight
        for name in set(frames):
            inclusive[name] += weight
        if frames:
            own[frames[-1]] += weight
    print(f"{total} samples")
    print("inclusive:")
    for name, n in inclusive.most_common(count):
        print(f"  {100 * n / total:5.1f}%  {name}")
    print("self:")
    for name, n in own.most_common(count):
        print(f"  {100 * n / total:5.1f}%  {name}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("clients", type=int, nargs="?", default=2000)
    parser.add_argument("--out", type=Path, default=Path("connect-storm.txt"))
    parser.add_argument("--top", type=int, default=40)
    args = parser.parse_args()
    procs.raise_fd_limit()
    asyncio.run(storm(args.clients, args.out))
    top(args.out, args.top)


if __name__ == "__main__":
    main()
