"""Pytest fixture for a real Jaeger (all-in-one, memory store) on loopback.

``jaeger``: one Jaeger for the session, its OTLP/HTTP receiver and query API
on free loopback ports. The binary is tools/observe/build.sh's (built from
the Go module proxy by ``make deps``); a missing one fails the test, never
skips. Traces of different tests never mix: each test finds its own by id.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import pytest

from fleetcast.devtools.redis import free_port

ROOT: Final = Path(__file__).resolve().parents[2]
START_WITHIN_S: Final = 60.0


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
        "receivers": {
            "otlp": {"protocols": {"http": {"endpoint": f"127.0.0.1:{otlp_port}"}}},
        },
        "processors": {"batch": {"timeout": "100ms"}},
        "exporters": {"jaeger_storage_exporter": {"trace_storage": "memstore"}},
    }


@dataclass(frozen=True)
class Jaeger:
    otlp_endpoint: str
    query_url: str

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


def _wait_for_query(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_WITHIN_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"jaeger exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/api/services", timeout=2):  # noqa: S310
                return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"jaeger not up in {START_WITHIN_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def jaeger() -> Iterator[Jaeger]:
    binary = jaeger_binary()
    otlp_port, query_port, grpc_port = free_port(), free_port(), free_port()
    with tempfile.TemporaryDirectory(prefix="fleetcast-jaeger-") as folder:
        config_path, log = Path(folder) / "config.json", Path(folder) / "jaeger.log"
        config_path.write_text(json.dumps(config(otlp_port, query_port, grpc_port)))
        with log.open("wb") as out:
            process = subprocess.Popen(
                [str(binary), "--config", f"file:{config_path}"],
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        try:
            query_url = f"http://127.0.0.1:{query_port}"
            _wait_for_query(query_url, process, log)
            yield Jaeger(f"http://127.0.0.1:{otlp_port}", query_url)
        finally:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)
