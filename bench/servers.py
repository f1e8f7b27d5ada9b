"""The servers under test: the fleetcast gateway and the Node.js socket.io reference.

Both read the same Redis pub/sub channels and wire format, verify the same
HS256 tokens and speak the same Socket.IO subset, so one load generator and
one publisher drive either. Each is one process pinned to the server core,
started fresh for every measurement (a clean RSS baseline) and stopped for sure.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

import aiohttp

from bench import procs, prom, tokens

REPO = Path(__file__).resolve().parents[1]
NODE_DIR = REPO / "bench" / "node"
WS_PATH = "/ws"
START_TIMEOUT_S = 60.0
#: Gateway counters that explain a loss or a slow phase.
WATCHED = tuple(
    f"fleetcast_gateway_{name}"
    for name in (
        "canary_failures_total",
        "redis_reconnects_total",
        "positions_shed_total",
        "wire_errors_total",
        "disconnects_total",
        "connect_refusals_total",
    )
)


class Server(Protocol):
    """What a scenario needs of a server under test."""

    name: str
    host: str
    port: int
    path: str

    @property
    def pid(self) -> int: ...

    async def start(self) -> None: ...

    async def counters(self) -> dict[str, float]:
        """Counters worth a look after a phase (reconnects, shed, cut-offs); may be empty."""
        ...

    def stop(self) -> None: ...


def gateway_env(
    redis_url: str, port: int, gateway_id: str, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """FLEETCAST_* settings of a benchmark gateway.

    Admission control is opened wide (handshake and subscribe rates, connection
    caps) because these scenarios measure delivery, not storms; the limits that
    protect delivery (buffers, slow-client cut-off) keep their defaults.
    """
    env = {
        "FLEETCAST_REDIS_URL": redis_url,
        "FLEETCAST_JWT_SECRET": tokens.SECRET,
        "FLEETCAST_HOST": "127.0.0.1",
        "FLEETCAST_PORT": str(port),
        "FLEETCAST_WS_PATH": WS_PATH,
        "FLEETCAST_GATEWAY_ID": gateway_id,
        "FLEETCAST_LOG_LEVEL": "WARNING",
        "FLEETCAST_MAX_CONNECTIONS": "30000",
        "FLEETCAST_HANDSHAKE_RATE": "1000000",
        "FLEETCAST_HANDSHAKE_BURST": "1000000",
        "FLEETCAST_SUBSCRIBE_RATE": "1000",
        "FLEETCAST_SUBSCRIBE_BURST": "1000",
        "FLEETCAST_DRAIN_SECONDS": "0",
    }
    return {**env, **(extra or {})}


class _ServerProcess:
    """One server process on a fresh loopback port, ready once ``ready_path`` answers 200."""

    name = "?"
    ready_path = "/health"

    def __init__(self, cpus: Sequence[int] | None, log: Path) -> None:
        self.cpus = cpus
        self.log = log
        self.host, self.port, self.path = "127.0.0.1", 0, WS_PATH
        self._proc: procs.Proc | None = None

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        """argv, environment and working directory; ``self.port`` is already chosen."""
        raise NotImplementedError

    async def start(self) -> None:
        self.port = procs.free_port()
        argv, env, cwd = self.command()
        self._proc = procs.Proc(
            self.name, procs.pinned(argv, self.cpus), env=env, log=self.log, cwd=cwd
        )
        await procs.wait_port(self._proc, self.port, START_TIMEOUT_S)
        await wait_http_ok(self._proc, f"http://127.0.0.1:{self.port}{self.ready_path}")

    async def counters(self) -> dict[str, float]:
        return {}

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.stop()
            self._proc = None


class FleetcastGateway(_ServerProcess):
    """``python -m fleetcast.gateway`` from this checkout; ready when /ready says so."""

    name = "fleetcast"
    ready_path = "/ready"

    def __init__(
        self,
        redis_url: str,
        cpus: Sequence[int] | None,
        log_dir: Path,
        *,
        gateway_id: str = "bench-gw",
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(cpus, log_dir / f"{gateway_id}.log")
        self.redis_url = redis_url
        self.gateway_id = gateway_id
        self.extra_env = extra_env

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        env = gateway_env(self.redis_url, self.port, self.gateway_id, self.extra_env)
        return [sys.executable, "-m", "fleetcast.gateway"], env, REPO

    async def metrics(self) -> str:
        async with (
            aiohttp.ClientSession() as session,
            session.get(f"http://127.0.0.1:{self.port}/metrics") as resp,
        ):
            return await resp.text()

    async def counters(self) -> dict[str, float]:
        found = prom.samples(await self.metrics())
        return {k: v for k, v in found.items() if k.startswith(WATCHED)}


class NodeReference(_ServerProcess):
    """The socket.io v4 server of ``bench/node/server.js``."""

    name = "socket.io"

    def __init__(self, redis_url: str, cpus: Sequence[int] | None, log_dir: Path) -> None:
        super().__init__(cpus, log_dir / "node-reference.log")
        self.redis_url = redis_url

    async def start(self) -> None:
        install_node_reference()
        await super().start()

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        env = {
            "PORT": str(self.port),
            "REDIS_URL": self.redis_url,
            "JWT_SECRET": tokens.SECRET,
            "WS_PATH": WS_PATH,
            "NODE_ENV": "production",
        }
        return ["node", str(NODE_DIR / "server.js")], env, NODE_DIR


def install_node_reference() -> None:
    """``npm ci`` the pinned packages once (bench/node/install.sh skips when up to date)."""
    subprocess.run([str(NODE_DIR / "install.sh")], check=True, timeout=600)


def node_versions() -> dict[str, str]:
    """Node and socket.io versions actually installed, for the report."""
    out = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False)
    versions = {"node": out.stdout.strip()}
    for package in ("socket.io", "engine.io", "ws"):
        manifest = NODE_DIR / "node_modules" / package / "package.json"
        if manifest.exists():
            import json

            versions[package] = json.loads(manifest.read_text()).get("version", "?")
    return versions


async def wait_http_ok(proc: procs.Proc, url: str, within_s: float = START_TIMEOUT_S) -> None:
    """Until ``url`` answers 200 (the gateway's /ready: Redis subscriber alive)."""
    end = time.monotonic() + within_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < end:
            if not proc.alive():
                raise RuntimeError(f"{proc.name} exited:\n{proc.tail()}")
            try:
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{url} not ready within {within_s:.0f}s:\n{proc.tail()}")
