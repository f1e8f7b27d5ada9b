"""Debian's chromium, headless, driven by Playwright (which downloads no browser).

``browser_fixture`` registers as ``browser`` in the modules that import it,
``tile_server_fixture`` as ``tile_server`` (a loopback map tile server).
A missing chromium fails the test: `make deps` installs it.
"""

from __future__ import annotations

import shutil
import struct
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Final

import pytest
from aiohttp import web
from playwright.async_api import Browser, async_playwright

from fleetcast.devtools.ports import free_port

CHROMIUM: Final = "/usr/bin/chromium"
CHROMIUM_ARGS: Final = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    # Tests never reach the internet: any name but loopback fails to resolve
    # (the console's default map tiles are OpenStreetMap's).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
]


@pytest.fixture(name="browser")
async def browser_fixture() -> AsyncIterator[Browser]:
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} missing: run scripts/system-deps.sh (make deps)")
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


def png(width: int, height: int, fill: bytes, edge: bytes) -> bytes:
    """A plain RGB PNG of ``fill`` with a one-pixel ``edge`` border (a tile a person can see)."""
    border = edge * width
    inner = edge + fill * (width - 2) + edge
    rows = [border] + [inner] * (height - 2) + [border]
    raw = b"".join(b"\x00" + row for row in rows)

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


@dataclass
class TileServer:
    """A tiny map tile server on loopback: the same plain tile for every {z}/{x}/{y}.

    It records each request's path and Referer, so a test can check where the
    console asked for tiles and what it told the tile server.
    """

    requests: list[tuple[str, str]] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None
    _tile: bytes = field(default_factory=lambda: png(256, 256, b"\xd8\xdc\xe0", b"\xb0\xb8\xc0"))

    @property
    def template(self) -> str:
        """The FLEETCAST_MAP_TILE_URL that points the console here."""
        return f"http://127.0.0.1:{self.port}/tiles/{{z}}/{{x}}/{{y}}.png"

    async def tile(self, request: web.Request) -> web.Response:
        self.requests.append((request.path, request.headers.get("Referer", "")))
        return web.Response(body=self._tile, content_type="image/png")

    async def start(self) -> TileServer:
        app = web.Application()
        app.router.add_get(r"/tiles/{z:\d+}/{x:\d+}/{y:\d+}.png", self.tile)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        self.port = free_port()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()


@pytest.fixture(name="tile_server")
async def tile_server_fixture() -> AsyncIterator[TileServer]:
    server = await TileServer().start()
    try:
        yield server
    finally:
        await server.stop()
