"""The browser dispatch console: static files served by the gateway at ``/``.

The console is a plain client of the public protocol (it connects to the
Socket.IO path like any other client), so serving it is all the gateway does
for it, plus ``/config.json``: what the page cannot know by itself (the map's
tile server). Only the files that exist under ``static/`` with a known name
shape are served: no directory listing, no path the regex lets climb out.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from aiohttp import web

STATIC: Final = Path(__file__).parent.parent / "static"
DEFAULT_TILE_URL: Final = "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
DEFAULT_ATTRIBUTION: Final = (
    '&copy; <a href="https://www.openstreetmap.org/copyright">OpenStreetMap</a> contributors'
)
#: The page may talk to its own origin only and load nothing from elsewhere but
#: the map's tiles (``{tiles}``: the tile server's origin, or nothing for 'self').
CSP_TEMPLATE: Final = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:{tiles}; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
BASE_HEADERS: Final = {
    "X-Content-Type-Options": "nosniff",
    # ?token= must never travel in a Referer header (the map's tile requests
    # send the origin only: referrerPolicy on the tile layer, js/map.js).
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
ASSET_PATTERN: Final = r"(app\.js|style\.css|(js|vendor)/[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)+)"
#: What a tile URL may contain: no spaces, quotes, commas or semicolons, which
#: would change the meaning of the Content-Security-Policy it goes into.
_TILE_URL: Final = re.compile(r"[A-Za-z0-9._~:/?#\[\]@!$&()*+=%{}-]+")


@dataclass(frozen=True, slots=True)
class MapConfig:
    """The map's tile server as the page needs it (FLEETCAST_MAP_* settings)."""

    tile_url: str = DEFAULT_TILE_URL
    attribution: str = DEFAULT_ATTRIBUTION
    max_zoom: int = 19

    def as_json(self) -> dict[str, object]:
        return {"tileUrl": self.tile_url, "attribution": self.attribution, "maxZoom": self.max_zoom}


def tile_source(tile_url: str) -> str:
    """The CSP source the tiles come from: an origin, ``*.`` for a ``{s}`` subdomain, or ''.

    '' means the tiles are a path on the gateway's own origin ('self' covers
    them). Raises ValueError, saying why, for a URL a browser could not use.
    """
    if not _TILE_URL.fullmatch(tile_url):
        raise ValueError(f"tile URL {tile_url!r} has characters a URL cannot have")
    missing = [p for p in ("{z}", "{x}", "{y}") if p not in tile_url]
    if missing:
        raise ValueError(f"tile URL {tile_url!r} lacks {', '.join(missing)}")
    if tile_url.startswith("/") and not tile_url.startswith("//"):
        return ""
    parts = urlsplit(tile_url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"tile URL {tile_url!r} must be http(s)://host/... or a /path")
    host = parts.netloc
    if host.startswith("{s}."):  # a, b, c.tile.example.org: CSP's leftmost wildcard
        host = "*." + host.removeprefix("{s}.")
    if "{" in host or "@" in host:
        raise ValueError(f"tile URL {tile_url!r}: only a leading {{s}}. may vary in the host")
    return f"{parts.scheme}://{host}"


def headers(tile_url: str) -> dict[str, str]:
    """The console's response headers, its CSP letting tiles come from ``tile_url``'s origin."""
    source = tile_source(tile_url)
    csp = CSP_TEMPLATE.format(tiles=f" {source}" if source else "")
    return {"Content-Security-Policy": csp, **BASE_HEADERS}


class Console:
    """The page, its files and its configuration, all with the same headers."""

    def __init__(self, config: MapConfig) -> None:
        self._config = config
        self._headers = headers(config.tile_url)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/", self.index),
            web.get("/config.json", self.settings),
            web.get("/{name:" + ASSET_PATTERN + "}", self.asset),
        ]

    async def index(self, _: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers=self._headers)

    async def settings(self, _: web.Request) -> web.Response:
        return web.json_response({"map": self._config.as_json()}, headers=self._headers)

    async def asset(self, request: web.Request) -> web.StreamResponse:
        path = STATIC / request.match_info["name"]
        if not path.is_file():
            raise web.HTTPNotFound()
        return web.FileResponse(path, headers=self._headers)


def add_routes(app: web.Application, enabled: bool, config: MapConfig) -> None:
    """Serve the console at ``/`` when enabled (FLEETCAST_CONSOLE_ENABLED)."""
    if enabled:
        app.add_routes(Console(config).routes())
