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
import shutil
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Final, Self

from fleetcast.devtools import lifetime, scratch

__all__ = ["DIR_PREFIX", "RedisServer", "RedisServerError", "free_port"]

#: Name prefix of the servers' temp dirs (what a sweep looks for).
DIR_PREFIX: Final = "fleetcast-redis-"

START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 5.0


class RedisServerError(RuntimeError):
    """redis-server is missing, did not start, or did not stop."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
