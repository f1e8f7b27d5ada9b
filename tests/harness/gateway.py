"""Helpers and fixtures to run a real gateway and real Socket.IO clients against it.

- :func:`make_token` mints a JWT with the test secret :data:`SECRET`, and
  :class:`GatewayProcess` runs ``python -m fleetcast.gateway`` as a subprocess
  (signals, exit codes); both live in :mod:`tests.harness.gateway_process`,
  which imports nothing of the gateway, and are re-exported here.
- :func:`start_gateway` runs a gateway app in this event loop on a free port
  (fast; the ``gateway`` fixture uses it).
- :class:`Client` wraps python-socketio's AsyncClient and records every event.
- :func:`scrape` reads one gateway's /metrics into a dict.

Everything binds 127.0.0.1; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
import socketio
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from fleetcast.devtools.ports import free_port
from fleetcast.gateway.app import GATEWAY, Gateway, create_app
from fleetcast.gateway.settings import Settings
from tests.harness.gateway_process import SECRET as SECRET
from tests.harness.gateway_process import GatewayProcess as GatewayProcess
from tests.harness.gateway_process import make_token as make_token

WAIT_S = 5.0


def gateway_settings(redis_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "jwt_secret": SECRET,
        "redis_url": redis_url,
        "port": 0,
        "canary_interval_s": 0.5,
        "canary_timeout_s": 0.3,
        "redis_backoff_max_s": 0.5,
        "subscribe_rate": 1000.0,  # tests of the rate limit set their own
        "subscribe_burst": 1000,
        "gateway_id": f"test-{free_port()}",
        **overrides,
    }
    return Settings(**values)


@dataclass
class RunningGateway:
    app: web.Application
    runner: web.AppRunner
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def gateway(self) -> Gateway:
        return self.app[GATEWAY]

    async def stop(self) -> None:
        """Send clients away (as SIGTERM would, without the wait), then shut down."""
        await self.gateway.drain(0.0)
        await self.runner.cleanup()

    async def wait_ready(self, ready: bool = True, within: float = WAIT_S) -> None:
        await wait_until(lambda: self.gateway.ready is ready, within, f"ready={ready}")


async def start_gateway(settings: Settings, *, wait_ready: bool = True) -> RunningGateway:
    """Run a gateway app in this loop; its port is chosen by the OS."""
    app = create_app(settings)
    runner = web.AppRunner(app, handle_signals=False, access_log=None, shutdown_timeout=2.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", settings.port)
    await site.start()
    port = int(runner.addresses[0][1])
    running = RunningGateway(app, runner, port)
    if wait_ready:
        await running.wait_ready()
    return running


async def wait_until(
    predicate: Callable[[], object], within: float = WAIT_S, what: str = ""
) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {within}s waiting for {what or predicate}")
        await asyncio.sleep(0.01)


class Client:
    """A python-socketio AsyncClient that records every event it receives."""

    def __init__(self, url: str, *, reconnection: bool = False, path: str = "/ws") -> None:
        self.url = url
        self.path = path
        self.sio = socketio.AsyncClient(reconnection=reconnection, reconnection_delay=0.1)
        self.events: list[tuple[str, Any]] = []
        self.connect_error: Any = None
        self.disconnects: list[Any] = []
        self.sio.on("*", self._on_any)
        self.sio.on("connect_error", self._on_connect_error)
        self.sio.on("disconnect", self._on_disconnect)

    async def _on_any(self, event: str, *args: Any) -> None:
        self.events.append((event, args[0] if len(args) == 1 else args))

    async def _on_connect_error(self, data: Any = None) -> None:
        self.connect_error = data

    async def _on_disconnect(self, reason: Any = None) -> None:
        self.disconnects.append(reason)

    async def connect(
        self,
        token: str | None = None,
        *,
        auth: Any = None,
        headers: Mapping[str, str] | None = None,
        query: str = "",
        transports: tuple[str, ...] = ("websocket",),
    ) -> bool:
        """True when connected; False (with :attr:`connect_error`) when refused."""
        if auth is None and token is not None:
            auth = {"token": token}
        try:
            await self.sio.connect(
                self.url + (f"?{query}" if query else ""),
                socketio_path=self.path,
                auth=auth,
                headers=dict(headers or {}),
                transports=list(transports),
                wait_timeout=WAIT_S,
            )
        except socketio.exceptions.ConnectionError:
            return False
        return True

    async def call(self, event: str, data: Any = None) -> Any:
        return await self.sio.call(event, data, timeout=WAIT_S)

    def received(self, name: str) -> list[Any]:
        return [data for event, data in self.events if event == name]

    async def wait_for(self, name: str, count: int = 1, within: float = WAIT_S) -> list[Any]:
        await wait_until(lambda: len(self.received(name)) >= count, within, f"{count} x {name}")
        return self.received(name)

    async def close(self) -> None:
        if self.sio.connected:
            await self.sio.disconnect()
        await self.sio.shutdown()


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def metric(
    samples: Mapping[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def get_json(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.json()


@pytest.fixture
async def gateway(redis_url: str) -> AsyncIterator[RunningGateway]:
    """A gateway on the shared (emptied) Redis, ready."""
    running = await start_gateway(gateway_settings(redis_url))
    try:
        yield running
    finally:
        await running.stop()


@pytest.fixture
async def clients() -> AsyncIterator[Callable[[str], Client]]:
    """Factory of :class:`Client`s, all closed after the test."""
    made: list[Client] = []

    def factory(url: str, **kwargs: Any) -> Client:
        client = Client(url, **kwargs)
        made.append(client)
        return client

    try:
        yield factory
    finally:
        for client in made:
            await client.close()
