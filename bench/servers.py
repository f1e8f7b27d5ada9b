"""The servers under test: the fleetcast gateway, the Node.js socket.io reference, Centrifugo.

fleetcast and Node read the same Redis pub/sub channels and wire format,
verify the same HS256 tokens and speak the same Socket.IO subset, so one load
generator and one publisher drive either. Each is one process pinned to the
server core, started fresh for every measurement (a clean RSS baseline) and
stopped for sure.

Centrifugo (v6, Go, built by tools/centrifugo/build.sh) is the peer its users
would pick for this job. It verifies the same HS256 tokens (``sub`` is the
user), is published to through its HTTP server API (:class:`bench.publish.
CentrifugoPublisher`) and speaks its own JSON protocol, which the load
generator speaks too (:mod:`bench.loadgen.centrifugo_client`). It is given
every core (the server's and the load generator's): Go schedules its
goroutines on both (GOMAXPROCS 2), as it would in production, so its CPU
per delivery is its total over both cores and its connect rate is a
two-core figure. With ``engine="redis"`` a publication goes
through Redis (PUBLISH from the node that got the API call, then its own
subscriber), as fleetcast's events do; ``memory`` keeps it in process.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Final, Protocol

import aiohttp

from bench import procs, prom, publish, tokens
from bench.loadgen import centrifugo_codec

REPO = Path(__file__).resolve().parents[1]
NODE_DIR = REPO / "bench" / "node"
WS_PATH = "/ws"
#: Centrifugo's HTTP server API key (a benchmark value, not a credential).
CENTRIFUGO_API_KEY = "fleetcast-bench-api-key"
START_TIMEOUT_S = 60.0
#: Centrifugo's channel history when a scenario resumes from it (publications, duration).
HISTORY_SIZE = 1000
HISTORY_TTL = "600s"
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
    #: The wire protocol its clients speak: ``socket.io`` or ``centrifugo``.
    protocol: str

    @property
    def pid(self) -> int: ...

    def publisher(self) -> publish.Publisher:
        """A publisher feeding this server the way its users would (caller closes it)."""
        ...

    async def start(self) -> None: ...

    async def counters(self) -> dict[str, float]:
        """Counters worth a look after a phase (reconnects, shed, cut-offs); may be empty."""
        ...

    def stop(self) -> None: ...


#: The gateway's own admission defaults (its settings), for the scenarios that measure storms.
DEFAULT_ADMISSION: Final = {"FLEETCAST_HANDSHAKE_RATE": "500", "FLEETCAST_HANDSHAKE_BURST": "1000"}


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
    protocol = "socket.io"

    def __init__(self, cpus: Sequence[int] | None, log: Path, redis_url: str) -> None:
        self.cpus = cpus
        self.log = log
        self.redis_url = redis_url
        self.host, self.port, self.path = "127.0.0.1", 0, WS_PATH
        self._proc: procs.Proc | None = None

    def publisher(self) -> publish.Publisher:
        return publish.RedisPublisher(self.redis_url)

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
        super().__init__(cpus, log_dir / f"{gateway_id}.log", redis_url)
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
        super().__init__(cpus, log_dir / "node-reference.log", redis_url)

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


class CentrifugoServer(_ServerProcess):
    """Centrifugo v6 with a config this benchmark writes, on every core (``cpus``)."""

    name = "centrifugo"
    protocol = "centrifugo"

    def __init__(
        self,
        redis_url: str,
        cpus: Sequence[int] | None,
        log_dir: Path,
        *,
        engine: str = "redis",
        history: bool = False,
        instance: str = "centrifugo",
    ) -> None:
        super().__init__(cpus, log_dir / f"{instance}.log", redis_url)
        self.engine = engine
        self.history = history
        self.config_path = log_dir / f"{instance}.json"
        self.path = centrifugo_codec.WS_PATH

    async def start(self) -> None:
        self.binary = build_centrifugo()
        await super().start()

    def command(self) -> tuple[list[str], dict[str, str], Path]:
        self.config_path.parent.mkdir(parents=True, exist_ok=True)
        redis_url = self.redis_url if self.engine == "redis" else None
        config = centrifugo_config(self.port, redis_url, history=self.history)
        self.config_path.write_text(json.dumps(config, indent=2))
        return [self.binary, "--config", str(self.config_path)], {}, self.config_path.parent

    def publisher(self) -> publish.Publisher:
        return publish.CentrifugoPublisher(f"http://127.0.0.1:{self.port}/api", CENTRIFUGO_API_KEY)


def centrifugo_config(
    port: int, redis_url: str | None, *, history: bool = False
) -> dict[str, object]:
    """Centrifugo v6 configuration: HS256 tokens, the bench namespace, HTTP API, engine.

    ``redis_url`` ``None``: the memory engine. The ``rooms`` namespace lets any
    authenticated client subscribe (fleetcast checks the token's org and role
    instead; neither costs much next to a delivery). No presence, no
    join/leave messages, and no history unless ``history``: fleetcast's
    pub/sub path keeps none. With ``history`` (the storm's resume) every
    channel keeps its last :data:`HISTORY_SIZE` publications for
    :data:`HISTORY_TTL`, and ``force_recovery`` lets a client resubscribing
    with ``recover``/``offset``/``epoch`` get what it missed, as fleetcast's
    ``auth.since`` does from its room history.
    """
    engine: dict[str, object] = {"type": "memory"}
    if redis_url is not None:
        engine = {"type": "redis", "redis": {"address": [redis_url]}}
    namespace: dict[str, object] = {
        "name": centrifugo_codec.NAMESPACE,
        "allow_subscribe_for_client": True,
    }
    if history:
        namespace |= {
            "history_size": HISTORY_SIZE,
            "history_ttl": HISTORY_TTL,
            "force_recovery": True,
        }
    return {
        "http_server": {"address": "127.0.0.1", "port": port},
        "log": {"level": "warn"},
        "health": {"enabled": True},
        "client": {"token": {"hmac_secret_key": tokens.SECRET}},
        "http_api": {"key": CENTRIFUGO_API_KEY},
        "engine": engine,
        "channel": {"namespaces": [namespace]},
    }


def build_centrifugo() -> str:
    """tools/centrifugo/build.sh: builds it once into the cache, then only prints its path."""
    out = subprocess.run(
        [str(REPO / "tools" / "centrifugo" / "build.sh")],
        check=True,
        timeout=1800,
        stdout=subprocess.PIPE,
        text=True,
    )
    return out.stdout.strip().splitlines()[-1]


def centrifugo_version() -> str:
    """``centrifugo version`` of the built binary, for the report."""
    done = subprocess.run(
        [build_centrifugo(), "version"], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or "?"


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
