"""The run-wide state every scenario gets: options, core plan, Redis, output folders."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from bench import procs, servers
from bench.loadgen.control import LoadGen
from fleetcast.devtools.redis import RedisServer

SERVER_NAMES = ("fleetcast", "socket.io", "centrifugo")
QUICK_CLIENTS = (1000,)


@dataclass(frozen=True, slots=True)
class Options:
    """What the command line asked for."""

    scenarios: tuple[str, ...]
    #: Client counts asked for on the command line; ``None``: each scenario's own.
    clients: tuple[int, ...] | None
    servers: tuple[str, ...] = SERVER_NAMES
    quick: bool = False
    #: Offered deliveries per second in paced phases (events/s x recipients):
    #: a load both servers sustain, so latency is not a queue's length.
    rate: float = 20_000.0
    #: Length of a paced phase (seconds).
    seconds: float = 5.0
    #: Niceness of the run and every process it starts.
    nice: int = 0
    #: Replace the committed report (bench/results/report.md, .png) with this run's.
    publish: bool = False


class Context:
    """Shared by the scenarios of one run; owns the Redis server it starts."""

    def __init__(self, options: Options, plan: procs.CpuPlan, raw_dir: Path) -> None:
        self.options = options
        self.plan = plan
        self.raw_dir = raw_dir
        self.log_dir = raw_dir / "logs"
        self._redis: RedisServer | None = None

    @property
    def redis_url(self) -> str:
        if self._redis is None:
            # inherits this process's cores: the controller pinned itself to plan.rest
            self._redis = RedisServer().start()
        return self._redis.url

    def clients(self, default: tuple[int, ...]) -> tuple[int, ...]:
        """Client counts for a scenario: the command line's, 1,000 when quick, else ``default``."""
        if self.options.clients:
            return self.options.clients
        return QUICK_CLIENTS if self.options.quick else default

    def server(
        self, name: str, *, gateway_id: str = "bench-gw", extra_env: dict[str, str] | None = None
    ) -> servers.Server:
        """A server of ``name``; ``gateway_id`` and ``extra_env`` (FLEETCAST_*) are fleetcast's."""
        if name == "fleetcast":
            return servers.FleetcastGateway(
                self.redis_url,
                self.plan.server,
                self.log_dir,
                gateway_id=gateway_id,
                extra_env=extra_env,
            )
        if name == "socket.io":
            return servers.NodeReference(self.redis_url, self.plan.server, self.log_dir)
        if name == "centrifugo":
            return servers.CentrifugoServer(self.redis_url, self.plan.every, self.log_dir)
        raise ValueError(f"unknown server {name!r} (known: {', '.join(SERVER_NAMES)})")

    def loadgen(self) -> LoadGen:
        return LoadGen(self.plan.rest)

    @contextlib.asynccontextmanager
    async def serving(
        self, name: str, extra_env: dict[str, str] | None = None
    ) -> AsyncIterator[tuple[servers.Server, LoadGen]]:
        """A fresh server of ``name`` and a fresh load generator, both stopped on exit."""
        server = self.server(name, extra_env=extra_env)
        loadgen = self.loadgen()
        try:
            await server.start()
            await loadgen.start()
            yield server, loadgen
        finally:
            await loadgen.stop()
            server.stop()

    def close(self) -> None:
        if self._redis is not None:
            self._redis.cleanup()
            self._redis = None
