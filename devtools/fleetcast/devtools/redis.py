"""A real redis-server on a free loopback port, for tests, `make run` and benchmarks.

Usage::

    server = RedisServer().start()      # blocks until it answers PING
    server.url                          # "redis://127.0.0.1:<port>/0"
    server.restart()                    # same port, empty data (fault tests)
    server.stop()

The server keeps nothing on disk (no RDB, no AOF) in a temp dir of its own,
so a restart is a real loss of state, as after a crash without persistence.
Every call is synchronous and returns within a few hundred milliseconds, so
async tests may call it directly. ``RedisServer`` is also a context manager.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Self

__all__ = ["RedisServer", "RedisServerError", "free_port"]

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

    def __init__(self, port: int | None = None, *, binary: str = "redis-server") -> None:
        self.port = port
        self.binary = binary
        self._proc: subprocess.Popen[bytes] | None = None
        self._dir: Path | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RedisServerError("server was never started")
        return f"redis://127.0.0.1:{self.port}/0"

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
        self._dir = self._dir or Path(tempfile.mkdtemp(prefix="fleetcast-redis-"))
        self.port = self.port or free_port()
        with (self._dir / "stderr.log").open("ab") as stderr:
            self._proc = subprocess.Popen(
                [path, *self._arguments()],
                cwd=self._dir,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
            )
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
