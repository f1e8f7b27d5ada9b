"""The browser dispatch console: static files served by the gateway at ``/``.

The console is a plain client of the public protocol (it connects to the
Socket.IO path like any other client), so serving it is all the gateway does
for it. Only the files that exist under ``static/`` with a known name shape
are served: no directory listing, no path the regex lets climb out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

from aiohttp import web

STATIC: Final = Path(__file__).parent.parent / "static"
#: The page may talk to its own origin only and load nothing from elsewhere.
HEADERS: Final = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    # ?token= must never travel in a Referer header.
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ASSET_PATTERN: Final = r"(app\.js|style\.css|(js|vendor)/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+)"


async def index(_: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers=HEADERS)


async def asset(request: web.Request) -> web.StreamResponse:
    path = STATIC / request.match_info["name"]
    if not path.is_file():
        raise web.HTTPNotFound()
    return web.FileResponse(path, headers=HEADERS)


def add_routes(app: web.Application, enabled: bool) -> None:
    """Serve the console at ``/`` when enabled (FLEETCAST_CONSOLE_ENABLED)."""
    if not enabled:
        return
    app.router.add_get("/", index)
    app.router.add_get("/{name:" + ASSET_PATTERN + "}", asset)
