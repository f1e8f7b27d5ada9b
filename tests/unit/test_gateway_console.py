"""The console's edge: which tile servers its page may load from, and what /config.json says.

The page's Content-Security-Policy is built from the tile URL, so a URL that
would widen it (or that a browser could not use) must be refused at start-up.
"""

from __future__ import annotations

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from fleetcast.gateway.edge import console


@pytest.mark.parametrize(
    ("url", "source"),
    [
        ("https://tile.openstreetmap.org/{z}/{x}/{y}.png", "https://tile.openstreetmap.org"),
        ("https://{s}.tiles.example.org/{z}/{x}/{y}{r}.png", "https://*.tiles.example.org"),
        ("http://127.0.0.1:8800/osm/{z}/{x}/{y}.png?key=k", "http://127.0.0.1:8800"),
        ("/tiles/{z}/{x}/{y}.png", ""),
    ],
)
def test_tiles_come_from_their_origin_only(url: str, source: str) -> None:
    assert console.tile_source(url) == source


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("https://tiles.example.org/{z}/{x}.png", "lacks {y}"),
        ("ftp://tiles.example.org/{z}/{x}/{y}.png", "http"),
        ("//tiles.example.org/{z}/{x}/{y}.png", "http"),
        ("https://tiles.example.org/{z}/{x}/{y}.png; script-src *", "characters"),
        ("https://tiles.example.org/{z}/{x}/{y}.png 'unsafe-inline'", "characters"),
        ("https://a.{s}.example.org/{z}/{x}/{y}.png", "only a leading"),
        ("https://{z}.example.org/{z}/{x}/{y}.png", "only a leading"),
    ],
)
def test_a_tile_url_that_would_widen_the_policy_is_refused(url: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        console.tile_source(url)


def test_the_policy_lets_images_come_from_the_tile_server_and_nothing_else_widens() -> None:
    default = console.headers(console.DEFAULT_TILE_URL)["Content-Security-Policy"]
    assert "img-src 'self' data: https://tile.openstreetmap.org;" in default
    assert "connect-src 'self';" in default
    assert "script-src 'self';" in default
    local = console.headers("/tiles/{z}/{x}/{y}.png")["Content-Security-Policy"]
    assert "img-src 'self' data:;" in local


async def test_the_page_gets_the_map_settings_with_the_same_headers() -> None:
    app = web.Application()
    config = console.MapConfig("https://{s}.tiles.example.org/{z}/{x}/{y}.png", "&copy; us", 17)
    console.add_routes(app, True, config)
    async with TestClient(TestServer(app)) as client:
        answer = await client.get("/config.json")
        assert answer.status == 200
        assert await answer.json() == {
            "map": {
                "tileUrl": "https://{s}.tiles.example.org/{z}/{x}/{y}.png",
                "attribution": "&copy; us",
                "maxZoom": 17,
            }
        }
        csp = answer.headers["Content-Security-Policy"]
        assert "img-src 'self' data: https://*.tiles.example.org;" in csp
        assert answer.headers["Referrer-Policy"] == "no-referrer"
        page = await client.get("/")
        assert page.headers["Content-Security-Policy"] == csp
        assert (await client.get("/vendor/../settings.py")).status == 404


async def test_no_console_no_config() -> None:
    app = web.Application()
    console.add_routes(app, False, console.MapConfig())
    async with TestClient(TestServer(app)) as client:
        assert (await client.get("/config.json")).status == 404
