"""What the client tests (CLI and browser console) share: a real gateway
process, dev tokens, and a publisher that puts events into the gateway's
Redis exactly as the consumer does (history XADD per room, then one wire
message on the org channel), so these tests need no Kafka.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

import pytest
import redis.asyncio as aioredis

from fleetcast.client import tokens
from fleetcast.devtools.ports import free_port
from fleetcast.devtools.redis import RedisServer
from fleetcast.devtools.script_publisher import ScriptPublisher
from fleetcast.protocol import keys

SECRET: Final = "fleetcast-client-tests-secret-0123456789"  # noqa: S105 (test key)
START_TIMEOUT_S: Final = 20.0
#: The console's map tiles in tests: a loopback port nothing listens on (the
#: discard port), so no test browser ever asks the internet for a tile.
OFFLINE_TILES: Final = "http://127.0.0.1:9/tiles/{z}/{x}/{y}.png"
ROOT: Final = Path(__file__).resolve().parents[2]


def mint(
    sub: str, org: str, roles: tuple[str, ...] = ("dispatcher",), ttl_s: float = 600, **lists: Any
) -> str:
    grant = tokens.Grant(sub, org, roles, lists.get("channels", ()), lists.get("assets", ()))
    return tokens.sign(tokens.claims(grant, now=time.time(), ttl_s=ttl_s), SECRET)


def envelope(event_type: str, org: str, **data: Any) -> dict[str, Any]:
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    return {
        "event_id": uuid.uuid4().hex,
        "event_type": event_type,
        "organization_id": org,
        "occurred_at": stamp,
        "data": data,
    }


class GatewayProcess:
    """``python -m fleetcast.gateway`` on a free loopback port; stop() always."""

    def __init__(self, redis_url: str, log_dir: Path, port: int | None = None, **env: str) -> None:
        self.redis_url = redis_url
        self.port = port or free_port()
        self.log_path = log_dir / f"gateway-{self.port}.log"
        self.extra_env = env
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayProcess:
        env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCAST_")}
        env.update(
            {
                "FLEETCAST_HOST": "127.0.0.1",
                "FLEETCAST_PORT": str(self.port),
                "FLEETCAST_REDIS_URL": self.redis_url,
                "FLEETCAST_JWT_SECRET": SECRET,
                "FLEETCAST_GATEWAY_ID": f"test-gw-{self.port}",
                "FLEETCAST_DRAIN_SECONDS": "1",
                "FLEETCAST_LOG_LEVEL": "WARNING",
                "FLEETCAST_MAP_TILE_URL": OFFLINE_TILES,
            }
            | self.extra_env
        )
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fleetcast.gateway"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
            )
        self._wait_ready()
        return self

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self.proc is not None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"gateway exited at start:\n{self.log_tail()}")
            ready = f"{self.url}/ready"
            with contextlib.suppress(OSError), urllib.request.urlopen(ready, timeout=1) as answer:  # noqa: S310
                if answer.status == 200:
                    return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"gateway not ready in {START_TIMEOUT_S}s:\n{self.log_tail()}")

    def log_tail(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def kill(self) -> None:
        """SIGKILL: the crash case, no drain, no goodbye to clients."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


class Publisher:
    """Publishes envelopes through the consumer's own processing and script, on a real Redis.

    No Kafka: each envelope is a record of one partition of its own numbering,
    fenced under a Kafka cluster id of this publisher's own. So the histories,
    wire messages, fleet snapshot and state tables are exactly the consumer's.
    """

    def __init__(self, redis: aioredis.Redis) -> None:
        self.redis = redis
        self._script = ScriptPublisher(redis, "clients-support")

    async def publish(self, doc: Mapping[str, Any]) -> dict[str, str]:
        """Publish one envelope (refused ones raise); the offset of each history room."""
        routed = await self._script.publish([doc])
        offsets: dict[str, str] = {}
        for room in (room for item in routed for room in item.history):
            top: Any = await self.redis.xrevrange(keys.history_stream(room), count=1)
            [(entry, _fields)] = top
            offsets[room] = entry.decode() if isinstance(entry, bytes) else str(entry)
        return offsets

    async def wait_listener(self, org: str, timeout_s: float = 10.0) -> None:
        """Until a gateway subscribes to the org's channel (it does so for its first client)."""
        deadline = time.monotonic() + timeout_s
        channel = keys.org_channel(org)
        while time.monotonic() < deadline:
            counts = await self.redis.pubsub_numsub(channel)
            if counts and counts[0][1] > 0:
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no gateway subscribed to {channel} in {timeout_s}s")


# --- fixtures (imported by the test modules; pytest registers them by name) ---------


@pytest.fixture(scope="module", name="gateway")
def gateway_fixture(
    redis_server: RedisServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayProcess]:
    """One gateway per test module (each test uses its own org), to keep the suite short."""
    process = GatewayProcess(redis_server.url, tmp_path_factory.mktemp("gateway")).start()
    try:
        yield process
    finally:
        process.stop()


@pytest.fixture(name="publisher")
async def publisher_fixture(redis_url: str) -> AsyncIterator[Publisher]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield Publisher(client)
    finally:
        await client.aclose()
