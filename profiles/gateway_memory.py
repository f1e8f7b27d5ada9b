"""What one idle connection costs the gateway, object by object.

    .venv/bin/python profiles/gateway_memory.py [K] [--trace]

Runs a gateway app in this process (pinned to core 0, uvloop) on its own
redis-server, connects K benchmark clients from the bench load generator
(pinned to core 1), and prints RSS per connection, the Python objects each
connection adds (gc), and with ``--trace`` the allocations per connection by
where they were made (tracemalloc, slower). The numbers in profiles/gateway.md
came from it. A development tool: bounded (K <= 10,000), not part of any test.
"""

from __future__ import annotations

import asyncio
import collections
import gc
import os
import sys
import tracemalloc
from pathlib import Path

import uvloop
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench is not installed

from bench import tokens
from bench.loadgen.control import LoadGen
from bench.scenarios import common
from fleetcast.devtools.redis import RedisServer, free_port
from fleetcast.gateway.app import create_app
from fleetcast.gateway.settings import Settings


def rss() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS"):
            return int(line.split()[1]) * 1024
    return 0


def objects() -> collections.Counter[str]:
    return collections.Counter(type(o).__name__ for o in gc.get_objects())


async def main(k: int, trace: bool) -> None:
    os.sched_setaffinity(0, {0})
    redis = RedisServer().start()
    port = free_port()
    settings = Settings(
        redis_url=redis.url, jwt_secret=tokens.SECRET, port=port, ws_path="/ws",
        max_connections=30_000, handshake_rate=1e6, handshake_burst=1_000_000,
        subscribe_rate=1000, subscribe_burst=1000, log_level="WARNING", overload_lag_s=60,
    )  # fmt: skip
    runner = web.AppRunner(create_app(settings), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    loadgen = LoadGen([1])
    await loadgen.start()
    try:
        await loadgen.connect("127.0.0.1", port, "/ws", common.client_specs(20, "org-warm"))
        await asyncio.sleep(1)
        gc.collect()
        base, before = rss(), objects()
        if trace:
            tracemalloc.start(6)
        start = tracemalloc.take_snapshot() if trace else None
        result = await loadgen.connect(
            "127.0.0.1", port, "/ws", common.client_specs(k, "org-x"), within_s=300
        )
        await asyncio.sleep(2)
        gc.collect()
        per_conn = (rss() - base) / k / 1024
        print(f"{result.connected} connected; RSS per connection {per_conn:.1f} KB")
        added = objects() - before
        print(f"objects per connection {sum(added.values()) / k:.1f}")
        for name, count in added.most_common(15):
            print(f"  {name:28s} {count / k:6.2f}")
        if start is not None:
            report(tracemalloc.take_snapshot().compare_to(start, "traceback"), k)
    finally:
        await loadgen.close_all()
        await loadgen.stop()
        await runner.cleanup()
        redis.stop()


def report(stats: list[tracemalloc.StatisticDiff], k: int) -> None:
    print(f"traced per connection {sum(s.size_diff for s in stats) / k / 1024:.2f} KB")
    for stat in stats[:25]:
        where = " < ".join(f"{Path(f.filename).name}:{f.lineno}" for f in stat.traceback[::-1][:4])
        print(f"{stat.size_diff / k:7.0f} B {stat.count_diff / k:5.1f} obj  {where}")


if __name__ == "__main__":
    count = min(10_000, int(next((a for a in sys.argv[1:] if a.isdigit()), "2000")))
    uvloop.run(main(count, "--trace" in sys.argv))
