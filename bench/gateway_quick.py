"""First quick measurement of the gateway (issue 2): memory per idle connection
and the time to deliver one event to N subscribed clients.

    .venv/bin/python -m bench.gateway_quick [--clients 1000] [--rounds 20]

Starts its own redis-server and a gateway process (``python -m fleetcast.gateway``)
on free loopback ports, connects N lean clients (raw Engine.IO v4 / Socket.IO v5
over websocket, JWT in the auth payload) from this process, subscribes each to
``channel:c1``, then PUBLISHes one wire message per round on the org channel,
as the consumer does, and times its arrival at every client.

Figures:
- RSS per idle connection = (gateway RSS with N idle clients - RSS before) / N.
- Delivery time: from PUBLISH to the last (and median) client's receipt, per
  round; the client side (one Python process reading N sockets) is part of it.
- Gateway CPU per delivered message: the gateway process's user+system time
  over the rounds / deliveries (rusage via psutil, not wall time).

Bounded: N and rounds are capped; every wait has a timeout.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import psutil  # type: ignore[import-untyped]
import redis.asyncio as aioredis
from websockets.asyncio.client import ClientConnection, connect

from fleetcast.devtools.ports import free_port
from fleetcast.devtools.redis import RedisServer
from fleetcast.protocol import keys, wire

SECRET = "bench-secret-of-at-least-thirty-two-bytes"  # noqa: S105 (local bench only)
ORG = "bench"
ROOM = f"channel:c1:org:{ORG}"
MAX_CLIENTS = 10_000
MAX_ROUNDS = 200
STEP_TIMEOUT_S = 30.0


@dataclass
class LeanClient:
    """One Socket.IO client that only answers pings and timestamps one event type."""

    ws: ClientConnection
    received: list[float] = field(default_factory=list)

    @classmethod
    async def open(cls, url: str, token: str) -> LeanClient:
        ws = await connect(url, compression=None, ping_interval=None, max_size=None)
        opening = await ws.recv()
        assert isinstance(opening, str), opening
        assert opening.startswith("0"), opening
        await ws.send("40" + json.dumps({"token": token}))
        connected = await ws.recv()
        assert isinstance(connected, str), connected
        assert connected.startswith("40"), connected
        client = cls(ws)
        await ws.send('420["subscribe",{"room":"channel:c1"}]')
        while True:  # session event, then the ack
            message = await ws.recv()
            if isinstance(message, str) and message.startswith("430"):
                assert '"ok":true' in message.replace(" ", ""), message
                return client

    async def read(self) -> None:
        async for message in self.ws:
            if message == "2":
                await self.ws.send("3")
            elif isinstance(message, str) and message.startswith('42["incident_updated"'):
                self.received.append(time.perf_counter())


def token(n: int) -> str:
    claims = {
        "sub": f"u{n}",
        "org_id": ORG,
        "roles": ["dispatcher"],
        "exp": int(time.time()) + 3600,
    }
    return jwt.encode(claims, SECRET, algorithm="HS256")


def wire_message(n: int) -> bytes:
    event = {
        "event_id": f"ev{n}",
        "event_type": "incident_updated",
        "organization_id": ORG,
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": {"channel_id": "c1", "n": n},
    }
    return wire.encode(ORG, [wire.RoutedEvent((ROOM,), {ROOM: f"{n + 1}-0"}, event)])


def start_gateway(redis_url: str, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "FLEETCAST_JWT_SECRET": SECRET,
        "FLEETCAST_REDIS_URL": redis_url,
        "FLEETCAST_PORT": str(port),
        "FLEETCAST_LOG_LEVEL": "WARNING",
        "FLEETCAST_HANDSHAKE_BURST": str(MAX_CLIENTS * 2),
        "FLEETCAST_HANDSHAKE_RATE": str(MAX_CLIENTS * 2),
        "FLEETCAST_MAX_CONNECTIONS": str(MAX_CLIENTS * 2),
    }
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fleetcast.gateway"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def wait_ready(port: int) -> None:
    import aiohttp

    deadline = time.monotonic() + STEP_TIMEOUT_S
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            try:
                async with http.get(f"http://127.0.0.1:{port}/ready") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError("gateway not ready")


async def connect_all(url: str, count: int) -> list[LeanClient]:
    clients: list[LeanClient] = []
    for start in range(0, count, 50):
        batch = range(start, min(count, start + 50))
        clients += await asyncio.gather(*(LeanClient.open(url, token(n)) for n in batch))
    return clients


async def deliver_rounds(
    redis: aioredis.Redis, clients: list[LeanClient], rounds: int, gateway: psutil.Process
) -> dict[str, Any]:
    last, median = [], []
    cpu_before = sum(gateway.cpu_times()[:2])
    for n in range(rounds):
        started = time.perf_counter()
        await redis.publish(keys.org_channel(ORG), wire_message(n))
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while sum(len(c.received) > n for c in clients) < len(clients):
            if time.monotonic() > deadline:
                raise RuntimeError(f"round {n}: not every client got the event")
            await asyncio.sleep(0.0005)
        arrivals = sorted(c.received[n] - started for c in clients)
        last.append(arrivals[-1])
        median.append(arrivals[len(arrivals) // 2])
        await asyncio.sleep(0.05)
    cpu = sum(gateway.cpu_times()[:2]) - cpu_before
    return {
        "rounds": rounds,
        "last_client_ms": _summary([x * 1000 for x in last]),
        "median_client_ms": _summary([x * 1000 for x in median]),
        "gateway_cpu_us_per_delivery": round(cpu * 1e6 / (rounds * len(clients)), 2),
        "lost": sum(rounds - len(c.received) for c in clients),
    }


def _summary(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "p50": round(statistics.median(ordered), 2),
        "p90": round(ordered[int(len(ordered) * 0.9) - 1 if len(ordered) > 1 else 0], 2),
        "max": round(ordered[-1], 2),
    }


async def run(count: int, rounds: int) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="fleetcast-bench-"))
    server = RedisServer().start()
    port = free_port()
    proc = start_gateway(server.url, port, workdir / "gateway.log")
    readers: list[asyncio.Task[None]] = []
    clients: list[LeanClient] = []
    try:
        await wait_ready(port)
        gateway = psutil.Process(proc.pid)
        await asyncio.sleep(1.0)
        rss_before = gateway.memory_info().rss
        clients = await connect_all(f"ws://127.0.0.1:{port}/ws/?EIO=4&transport=websocket", count)
        readers = [asyncio.create_task(c.read()) for c in clients]
        await asyncio.sleep(2.0)  # idle: let buffers settle
        rss_idle = gateway.memory_info().rss
        async with aioredis.Redis.from_url(server.url) as redis:
            delivery = await deliver_rounds(redis, clients, rounds, gateway)
        return {
            "clients": count,
            "gateway_rss_before_mb": round(rss_before / 2**20, 1),
            "gateway_rss_idle_mb": round(rss_idle / 2**20, 1),
            "rss_per_idle_connection_kb": round((rss_idle - rss_before) / count / 1024, 1),
            **delivery,
        }
    finally:
        for task in readers:
            task.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*(c.ws.close() for c in clients), return_exceptions=True)
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
        server.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args()
    count = max(1, min(args.clients, MAX_CLIENTS))
    rounds = max(1, min(args.rounds, MAX_ROUNDS))
    figures = asyncio.run(run(count, rounds))
    text = json.dumps(figures, indent=2)
    print(text)
    if args.json:
        args.json.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
