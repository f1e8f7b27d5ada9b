"""A real redis-server on a free loopback port, for tests, `make run` and benchmarks.

Usage::

    server = RedisServer().start()      # blocks until it answers PING
    server.url                          # "redis://127.0.0.1:<port>/0"
    server.restart()                    # same port, empty data (fault tests)
    server.stop()

The server keeps nothing on disk (no RDB, no AOF) in a temp dir of its own,
so a restart is a real loss of state, as after a crash without persistence.
The dir is marked (:mod:`fleetcast.devtools.scratch`) so that a run killed
before its cleanup leaves nothing a later sweep cannot remove;
``die_with_parent=True`` (`make run`) has the server SIGKILLed with its parent.
Every call is synchronous and returns within a few hundred milliseconds, so
async tests may call it directly. ``RedisServer`` is also a context manager.
"""

from __future__ import annotations

import contextlib
import random
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from fleetcast.devtools import lifetime, scratch
from fleetcast.devtools.ports import free_port

__all__ = ["DIR_PREFIX", "RedisClusterServer", "RedisServer", "RedisServerError"]

#: Name prefix of the servers' temp dirs (what a sweep looks for).
DIR_PREFIX: Final = "fleetcast-redis-"

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class RedisServerError(RuntimeError):
    """redis-server is missing, did not start, or did not stop."""


def _ping(port: int) -> bool:
    """True when a server on ``port`` answers PING (raw RESP: no client library needed)."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server process bound to 127.0.0.1.

    ``port=None`` picks a free port at the first :meth:`start`; the port then
    stays the same across :meth:`restart`, so clients reconnect to it.
    """

    def __init__(
        self,
        port: int | None = None,
        *,
        binary: str = "redis-server",
        die_with_parent: bool = False,
    ) -> None:
        self.port = port
        self.binary = binary
        self.die_with_parent = die_with_parent
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RedisServerError("server was never started")
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Self:
        """Start the server and wait until it answers PING."""
        if self.running:
            return self
        path = shutil.which(self.binary)
        if path is None:
            raise RedisServerError(
                f"{self.binary} not found: run scripts/system-deps.sh (make deps) to install it"
            )
        with lifetime.critical():  # made and kept, or neither
            self._dir = self._dir or scratch.make(DIR_PREFIX)
        self.port = self.port or free_port()
        preexec = lifetime.die_with_parent() if self.die_with_parent else None
        with (self._dir / "stderr.log").open("ab") as stderr, lifetime.critical():
            self._proc = subprocess.Popen(
                [path, *self._arguments()],
                cwd=self._dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                start_new_session=True,  # as Kafka's: its owner stops it, after its clients
                preexec_fn=preexec,
            )
        scratch.add_user(self._dir, self._proc.pid)
        self._wait_ready()
        return self

    def _arguments(self) -> list[str]:
        assert self._dir is not None
        return [
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--dir", str(self._dir),
            "--save", "",
            "--appendonly", "no",
            "--daemonize", "no",
            "--logfile", str(self._dir / "redis.log"),
            "--loglevel", "warning",
        ]  # fmt: skip

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self._proc is not None
        assert self.port is not None
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RedisServerError(f"redis-server exited at start: {self._log_tail()}")
            if _ping(self.port):
                return
            time.sleep(0.02)
        self.stop()
        raise RedisServerError(f"redis-server did not answer PING in {START_TIMEOUT_S}s")

    def _log_tail(self) -> str:
        if self._dir is None:
            return ""
        log = self._dir / "redis.log"
        return log.read_text(errors="replace")[-2000:] if log.exists() else ""

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL); data is gone."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(STOP_TIMEOUT_S)

    def restart(self) -> Self:
        """Stop and start again on the same port (clients see a blip and an empty server)."""
        self.stop()
        return self.start()

    def cleanup(self) -> None:
        """Stop and remove the temp dir."""
        self.stop()
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(RedisServerError):
            self.cleanup()


#: Masters of a test cluster (each with one replica): 3 is the least Redis accepts.
CLUSTER_MASTERS: Final = 3
#: How long a cluster may take to agree on its slots, and a failover to complete.
CLUSTER_READY_TIMEOUT_S = 30.0
#: cluster-node-timeout (ms): how soon a dead master is failed over (tests kill them).
CLUSTER_NODE_TIMEOUT_MS = 1000


def free_cluster_port() -> int:
    """A free port whose bus port (+10000) is free too; Redis wants it at most 55535."""
    rng = random.SystemRandom()
    for _ in range(200):
        port = rng.randrange(20_000, 55_535)
        try:
            for candidate in (port, port + 10_000):
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
                    sock.bind(("127.0.0.1", candidate))
        except OSError:
            continue
        return port
    raise RedisServerError("no free port pair for a cluster node")


class ClusterNodeServer(RedisServer):
    """One redis-server of a cluster (``--cluster-enabled yes``)."""

    def start(self) -> Self:
        self.port = self.port or free_cluster_port()
        return super().start()

    def _arguments(self) -> list[str]:
        assert self._dir is not None
        return [
            *super()._arguments(),
            "--cluster-enabled", "yes",
            "--cluster-config-file", str(self._dir / "nodes.conf"),
            "--cluster-node-timeout", str(CLUSTER_NODE_TIMEOUT_MS),
            # A killed master's replica takes over at once (tests kill masters).
            "--cluster-replica-validity-factor", "0",
            "--cluster-allow-pubsubshard-when-down", "yes",
        ]  # fmt: skip

    def stop(self) -> None:
        super().stop()
        if self._dir is not None:  # a restart joins as a new, empty node
            (self._dir / "nodes.conf").unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash: no goodbye to the cluster."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT_S)


class RedisClusterServer:
    """A Redis Cluster on loopback: ``masters`` masters with ``replicas`` replicas each.

    Created with ``redis-cli --cluster create --cluster-yes``; dies with its
    parent when asked (``die_with_parent``) and leaves nothing behind after
    :meth:`cleanup`. ``url`` is the seed list fleetcast reads
    (``redis+cluster://127.0.0.1:p1,127.0.0.1:p2,...``).
    """

    def __init__(
        self,
        masters: int = CLUSTER_MASTERS,
        replicas: int = 1,
        *,
        die_with_parent: bool = False,
        cli: str = "redis-cli",
    ) -> None:
        self.masters, self.replicas, self.cli = masters, replicas, cli
        self.nodes = [
            ClusterNodeServer(die_with_parent=die_with_parent)
            for _ in range(masters * (1 + replicas))
        ]

    @property
    def ports(self) -> list[int]:
        return [node.port for node in self.nodes if node.port is not None]

    @property
    def url(self) -> str:
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    @property
    def running(self) -> bool:
        return all(node.running for node in self.nodes)

    def start(self) -> Self:
        """Start every node, create the cluster and wait until every slot is served."""
        for node in self.nodes:
            node.start()
        self._cli(
            "--cluster", "create", *(f"127.0.0.1:{port}" for port in self.ports),
            "--cluster-replicas", str(self.replicas), "--cluster-yes",
        )  # fmt: skip
        self.wait_ready()
        return self

    def wait_ready(self, timeout_s: float = CLUSTER_READY_TIMEOUT_S) -> None:
        """Until every running node says cluster_state:ok and every slot's master is running
        (after a kill: until its replica took over)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self._ok(node) for node in self.nodes if node.running) and self._served():
                return
            time.sleep(0.05)
        raise RedisServerError(f"redis cluster not ready in {timeout_s}s: {self.describe()}")

    def _ok(self, node: ClusterNodeServer) -> bool:
        info = self.command(node, "CLUSTER", "INFO")
        return "cluster_state:ok" in info and f"cluster_size:{self.masters}" in info

    def _served(self) -> bool:
        running = {node.port for node in self.nodes if node.running}
        for node in self.nodes:
            if not node.running:
                continue
            for line in self.command(node, "CLUSTER", "NODES").splitlines():
                fields = line.split()
                port = int(fields[1].split(":")[1].split("@")[0])
                if len(fields) > 8 and ("fail" in fields[2] or port not in running):
                    return False
        return True

    def command(self, node: ClusterNodeServer, *args: str) -> str:
        """One redis-cli command against ``node``; its output ('' when it fails)."""
        assert node.port is not None
        done = subprocess.run(
            [self.cli, "-p", str(node.port), *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        return done.stdout

    def _cli(self, *args: str) -> str:
        path = shutil.which(self.cli)
        if path is None:
            raise RedisServerError(f"{self.cli} not found: run scripts/system-deps.sh")
        done = subprocess.run(
            [path, *args], capture_output=True, text=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RedisServerError(f"redis-cli {' '.join(args[:2])} failed: {done.stderr}")
        return done.stdout

    def describe(self) -> str:
        """CLUSTER NODES as one running node sees it."""
        for node in self.nodes:
            if node.running:
                return self.command(node, "CLUSTER", "NODES")
        return "no node running"

    def master_of(self, slot: int) -> ClusterNodeServer:
        """The running node serving ``slot`` as master now."""
        for line in self.describe().splitlines():
            fields = line.split()
            if "master" not in fields[2] or "fail" in fields[2]:
                continue
            for spec in fields[8:]:
                low, _, high = spec.partition("-")
                if spec[0] != "[" and int(low) <= slot <= int(high or low):
                    port = int(fields[1].split(":")[1].split("@")[0])
                    return next(node for node in self.nodes if node.port == port)
        raise RedisServerError(f"no master serves slot {slot}")

    def node_id(self, node: ClusterNodeServer) -> str:
        return self.command(node, "CLUSTER", "MYID").strip()

    def migrate_slot(self, slot: int, target: ClusterNodeServer, batch: int = 100) -> None:
        """Move ``slot`` and its keys to ``target`` (IMPORTING, MIGRATING, MIGRATE, NODE)."""
        source = self.master_of(slot)
        source_id, target_id = self.node_id(source), self.node_id(target)
        self.command(target, "CLUSTER", "SETSLOT", str(slot), "IMPORTING", source_id)
        self.command(source, "CLUSTER", "SETSLOT", str(slot), "MIGRATING", target_id)
        assert target.port is not None
        while names := self.command(
            source, "CLUSTER", "GETKEYSINSLOT", str(slot), str(batch)
        ).split():
            self.command(
                source, "MIGRATE", "127.0.0.1", str(target.port), "", "0", "5000", "KEYS", *names
            )
        for node in (target, source):
            self.command(node, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)
        for node in self.nodes:
            if node.running and node not in (source, target):
                self.command(node, "CLUSTER", "SETSLOT", str(slot), "NODE", target_id)

    def flushall(self) -> None:
        """Empty every master (replicas follow)."""
        for node in self.nodes:
            if node.running:
                self.command(node, "FLUSHALL")

    def cleanup(self) -> None:
        for node in self.nodes:
            node.cleanup()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        with contextlib.suppress(RedisServerError):
            self.cleanup()
