"""A real Jaeger (all-in-one, memory store) on free loopback ports, for tests and benchmarks.

Usage::

    with JaegerServer() as jaeger:      # blocks until its query API answers
        jaeger.otlp_endpoint            # "http://127.0.0.1:<port>" (OTLP/HTTP base URL)
        jaeger.trace(trace_id)          # the trace as the query API returns it, or None

The binary is tools/observe/build.sh's (Jaeger v1.75.0 from the Go module
proxy, built by ``make deps``); a missing one is an error saying so. Only
the OTLP/HTTP receiver, the memory store and the query API run (no
self-metrics port, no sampling or zipkin receivers), each on a port of its own.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any, Final, Self

from fleetcast.devtools.ports import free_ports

__all__ = ["JaegerServer", "jaeger_binary"]

ROOT: Final = Path(__file__).resolve().parents[3]
START_WITHIN_S: Final = 60.0
STOP_TIMEOUT_S: Final = 10.0


def jaeger_binary() -> Path:
    """The pinned jaeger binary, or an error saying how to build it."""
    built = subprocess.run(
        [str(ROOT / "tools" / "observe" / "build.sh"), "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    if built.returncode != 0:
        raise RuntimeError(f"jaeger is not built: {built.stderr.strip()} (make deps builds it)")
    return Path(built.stdout.strip()) / "jaeger"


def config(otlp_port: int, query_port: int, grpc_port: int) -> dict[str, Any]:
    """Jaeger v2's collector configuration: OTLP/HTTP in, memory store, query API; no more."""
    return {
        "service": {
            "extensions": ["jaeger_storage", "jaeger_query"],
            "pipelines": {
                "traces": {
                    "receivers": ["otlp"],
                    "processors": ["batch"],
                    "exporters": ["jaeger_storage_exporter"],
                }
            },
            "telemetry": {"metrics": {"level": "none"}, "logs": {"level": "warn"}},
        },
        "extensions": {
            "jaeger_storage": {"backends": {"memstore": {"memory": {"max_traces": 100_000}}}},
            "jaeger_query": {
                "storage": {"traces": "memstore"},
                "http": {"endpoint": f"127.0.0.1:{query_port}"},
                "grpc": {"endpoint": f"127.0.0.1:{grpc_port}"},
            },
        },
        "receivers": {"otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp_port}"}}}},
        "processors": {"batch": {"timeout": "100ms"}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }


class JaegerServer:
    """One Jaeger process and its temp dir (config and log)."""

    def __init__(self) -> None:
        self.otlp_port, self.query_port, self._grpc_port = free_ports(3)
        self._dir = Path(tempfile.mkdtemp(prefix="fleetcast-jaeger-"))
        self.log_path = self._dir / "jaeger.log"
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def otlp_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.otlp_port}"

    @property
    def query_url(self) -> str:
        return f"http://127.0.0.1:{self.query_port}"

    def start(self) -> Self:
        config_path = self._dir / "config.json"
        config_path.write_text(json.dumps(config(self.otlp_port, self.query_port, self._grpc_port)))
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                [str(jaeger_binary()), "--config", f"file:{config_path}"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        self._wait_for_query()
        return self

    def trace(self, trace_id: int) -> dict[str, Any] | None:
        """The trace as the query API returns it (Jaeger's JSON), or None if not (yet) there."""
        url = f"{self.query_url}/api/traces/{trace_id:032x}"
        try:
            with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 (loopback)
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        data = body.get("data") or []
        return data[0] if data else None

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(STOP_TIMEOUT_S)

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.cleanup()

    def _wait_for_query(self) -> None:
        deadline = time.monotonic() + START_WITHIN_S
        while time.monotonic() < deadline:
            assert self._process is not None
            if self._process.poll() is not None:
                self.stop()
                raise RuntimeError(f"jaeger exited:\n{self._log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.query_url}/api/services", timeout=2):  # noqa: S310
                    return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"jaeger not up in {START_WITHIN_S} s:\n{self._log_tail()}")

    def _log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]
