"""The dispatch console in a real headless Chromium against a real gateway.

Debian's chromium, driven by Playwright (no browser download). The page is
served by the gateway at /, takes its token from ?token=, connects through
the public protocol, and is fed by the demo fleet simulator whose events go
through Redis exactly as the consumer publishes them. The map's tiles come
from loopback only: a port nothing listens on (the offline grid stands in,
as on a machine without internet) or a tiny tile server the test starts;
the browser resolves no other name. The screenshot of the main test goes to
.artifacts/console.png; with FLEETCAST_UPDATE_SCREENSHOT=1 also to
docs/console.png (the README's picture), so a plain test run never modifies
a committed file.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Final

import pytest
from playwright.async_api import Browser, Page, expect

from fleetcast.devtools import demo
from tests.integration.browser_support import (  # the fixtures register as browser, tile_server
    TileServer,
    browser_fixture,  # noqa: F401
    tile_server_fixture,  # noqa: F401
)
from tests.integration.clients_support import (  # the fixtures register as gateway, publisher
    ROOT,
    GatewayProcess,
    Publisher,
    gateway_fixture,  # noqa: F401
    mint,
    publisher_fixture,  # noqa: F401
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

ORG: Final = "org-metro"  # the demo fleet's first city
FEED_RATE: Final = 60.0  # events per second into the gateway
FEED_MAX_EVENTS: Final = 6000  # bounds the feeder whatever happens
STEP_MS: Final = 20_000


async def feed(publisher: Publisher, stop: asyncio.Event) -> int:
    """The demo fleet of one city at FEED_RATE, until stopped (or FEED_MAX_EVENTS)."""
    fleet = demo.Fleet(orgs=1, units_per_org=60, seed=11)
    sent = 0
    for envelope in fleet:
        if stop.is_set() or sent >= FEED_MAX_EVENTS:
            break
        await publisher.publish(envelope)
        sent += 1
        await asyncio.sleep(1 / FEED_RATE)
    return sent


@contextlib.asynccontextmanager
async def feeding(publisher: Publisher) -> AsyncIterator[None]:
    await publisher.wait_listener(ORG)
    stop = asyncio.Event()
    task = asyncio.create_task(feed(publisher, stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def open_console(browser: Browser, url: str, token: str, errors: list[str]) -> Page:
    """The console at ``url``, token in its address; uncaught page errors go to ``errors``."""
    page = await browser.new_page(viewport={"width": 1600, "height": 900})
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.set_default_timeout(STEP_MS)
    await page.goto(f"{url}/?token={token}")
    return page


async def count(page: Page, selector: str) -> int:
    return await page.locator(selector).count()


async def number(page: Page, selector: str) -> float:
    return float(await page.inner_text(selector))


async def ge(value: Awaitable[float], least: float) -> bool:
    return await value >= least


async def changed(value: Awaitable[str | None], before: str | None) -> bool:
    return await value != before


async def position(page: Page, asset: str) -> str:
    """Where the map's dot of ``asset`` stands (the lat,lon it was last drawn at)."""
    dot = page.locator(f'#map path.asset[data-asset="{asset}"]')
    return f"{await dot.get_attribute('data-lat')},{await dot.get_attribute('data-lon')}"


async def clickable_unit(page: Page) -> str:
    """The id of a unit whose dot is on top where it is drawn (not under a panel)."""
    found: str | None = await page.locator("#map path.asset").evaluate_all(
        """dots => {
          for (const dot of dots) {
            const box = dot.getBoundingClientRect();
            const hit = document.elementFromPoint(box.x + box.width / 2, box.y + box.height / 2);
            if (hit === dot) return dot.dataset.asset;
          }
          return null;
        }"""
    )
    assert found, "no unit dot is visible on the map"
    return found


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll from Python (the page's CSP forbids the string eval of wait_for_function)."""
    deadline = time.monotonic() + STEP_MS / 1000
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def test_dispatcher_sees_live_events_map_and_refusals(
    gateway: GatewayProcess, publisher: Publisher, browser: Browser
) -> None:
    errors: list[str] = []
    page = await open_console(browser, gateway.url, mint("disp-1", ORG), errors)
    await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
    assert "token=" not in page.url, "the token must leave the address bar"
    await expect(page.locator("#s-org")).to_have_text(ORG)
    await expect(page.locator("#s-user")).to_have_text("disp-1")
    await expect(page.locator("#s-roles")).to_contain_text("dispatcher")
    await expect(page.locator('#rooms li[data-room="fleet"]')).to_have_attribute("data-state", "ok")

    await page.fill("#room", "channel:ch-dispatch")
    await page.click("#sub-form button")
    await expect(page.locator('#rooms li[data-room="channel:ch-dispatch"]')).to_have_attribute(
        "data-state", "ok"
    )
    # Another org's room, smuggled in the room string: refused with its code.
    smuggled = "channel:ch-1:org:org-harbor"
    await page.fill("#room", smuggled)
    await page.click("#sub-form button")
    refused = page.locator(f'#rooms li[data-room="{smuggled}"]')
    await expect(refused).to_have_attribute("data-state", "refused")
    await expect(refused).to_have_attribute("data-code", "invalid_room")
    await expect(page.locator('#answers li[data-code="invalid_room"]')).to_have_count(1)

    async with feeding(publisher):
        await expect(page.locator("#feed tr").first).to_be_visible()
        await eventually(lambda: ge(count(page, "#map path.asset"), 40), "40 assets on the map")
        # No tiles on loopback's closed port: the plain background and its lat/lon grid.
        await expect(page.locator("#map")).to_have_attribute("data-tiles", "offline")
        await eventually(lambda: ge(count(page, "#map img.leaflet-tile"), 1), "tiles asked for")
        await expect(page.locator("#map .offline-notice")).to_be_visible()
        await eventually(lambda: ge(count(page, "#map path.grid-line"), 4), "the offline grid")
        await eventually(lambda: ge(count(page, "#map .grid-label"), 4), "the grid's labels")
        # Units move, and are coloured by status once one is known.
        before = await position(page, "unit-001")
        await eventually(lambda: changed(position(page, "unit-001"), before), "unit-001 moving")
        await eventually(
            lambda: ge(count(page, "#map path.asset:not(.st-unknown)"), 1), "a unit with a status"
        )
        await eventually(lambda: ge(number(page, "#incident-count"), 1), "an open incident")
        await eventually(lambda: ge(count(page, "#map .mark.incident"), 1), "an incident marked")
        await eventually(lambda: ge(count(page, "#map .mark.alert"), 1), "an alert marked")
        await expect(page.locator('#counters tr[data-type="alert_created"]')).to_have_count(1)
        await expect(page.locator("#lat-readout")).to_contain_text("p99")
        assert await number(page, "#rate") > 0

        # Filter by type: only that type stays visible.
        await page.select_option("#f-type", "incident_created")
        visible = page.locator("#feed tr:not([hidden])")
        await page.wait_for_timeout(500)
        types = await visible.evaluate_all("rows => rows.map(r => r.dataset.type)")
        assert types
        assert set(types) == {"incident_created"}
        await page.select_option("#f-type", "")

        # Pause holds the feed still while counters keep counting.
        await page.click("#pause")
        top = await page.locator("#feed tr").first.inner_text()
        await expect(page.locator("#paused")).not_to_have_text("paused · 0 new")
        await page.wait_for_timeout(1000)
        assert await page.locator("#feed tr").first.inner_text() == top
        await page.click("#pause")
        await eventually(
            lambda: changed(page.locator("#feed tr").first.inner_text(), top), "rows after resume"
        )

        # Click a unit: a popup with its details, and the Selected panel shows it too.
        unit = await clickable_unit(page)
        await page.locator(f'#map path.asset[data-asset="{unit}"]').click()
        popup = page.locator(f'#map .leaflet-popup .unit-popup[data-asset="{unit}"]')
        await expect(popup).to_be_visible()
        await expect(popup).to_contain_text(unit)
        await expect(popup).to_contain_text("status")
        await expect(popup).to_contain_text("s ago")
        await expect(popup).to_contain_text("km/h")
        await expect(page.locator("#selected")).to_contain_text(unit)

        # Click an open incident: its details, and one click to follow its room.
        # The list re-renders live: pin the incident by its id, not by being first
        # (CI once clicked inc-27 that had just become first, after reading inc-10).
        incident_id = await page.locator("#incidents li").first.get_attribute("data-id")
        await page.locator(f'#incidents li[data-id="{incident_id}"]').click()
        await expect(page.locator("#selected")).to_contain_text(str(incident_id))
        await page.click("#selected button")
        followed = page.locator(f'#rooms li[data-room="incident:{incident_id}"]')
        await expect(followed).to_have_attribute("data-state", "ok")

        await page.wait_for_timeout(2500)  # a few more seconds of traffic for the picture
        shot = await page.screenshot()
    targets = [ROOT / ".artifacts" / "console.png"]
    if os.environ.get("FLEETCAST_UPDATE_SCREENSHOT") == "1":
        targets.append(ROOT / "docs" / "console.png")
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(shot)
    assert errors == []


async def test_map_draws_tiles_from_the_configured_tile_server(
    redis_url: str, tmp_path: Path, tile_server: TileServer, browser: Browser
) -> None:
    gateway = GatewayProcess(
        redis_url, tmp_path, FLEETCAST_MAP_TILE_URL=tile_server.template
    ).start()
    try:
        errors: list[str] = []
        page = await open_console(browser, gateway.url, mint("disp-tiles", ORG), errors)
        await expect(page.locator("#map")).to_have_attribute("data-tiles", "online")
        await eventually(
            lambda: ge(count(page, "#map img.leaflet-tile-loaded"), 4), "tiles drawn on the map"
        )
        await expect(page.locator("#map .offline-notice")).to_have_count(0)
        await expect(page.locator("#map .leaflet-control-attribution")).to_contain_text(
            "OpenStreetMap"
        )
        assert tile_server.requests
        assert all(path.startswith("/tiles/") for path, _ in tile_server.requests)
        # The tile server learns the console's origin, never its address (nor a ?token=).
        assert {referer for _, referer in tile_server.requests} == {f"{gateway.url}/"}
        assert errors == []
    finally:
        gateway.stop()


async def test_console_reconnects_and_resumes_after_a_gateway_crash(
    redis_url: str, tmp_path: Path, browser: Browser
) -> None:
    first = GatewayProcess(redis_url, tmp_path).start()
    second = GatewayProcess(redis_url, tmp_path, port=first.port)
    try:
        errors: list[str] = []
        page = await open_console(browser, first.url, mint("disp-2", ORG), errors)
        await expect(page.locator('#rooms li[data-room="fleet"]')).to_have_attribute(
            "data-state", "ok"
        )
        await page.fill("#room", "channel:ch-dispatch")
        await page.click("#sub-form button")
        await expect(page.locator('#rooms li[data-room="channel:ch-dispatch"]')).to_have_attribute(
            "data-state", "ok"
        )
        first.kill()
        await expect(page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
        await asyncio.to_thread(second.start)
        await expect(page.locator("#conn")).to_have_attribute(
            "data-state", "connected", timeout=30_000
        )
        await expect(page.locator("#reconnects")).to_have_text("1 reconnect")
        await expect(page.locator('#rooms li[data-room="channel:ch-dispatch"]')).to_have_attribute(
            "data-state", "ok"
        )
        assert errors == []
    finally:
        first.stop()
        second.stop()


async def test_expired_token_is_refused_with_its_code(
    gateway: GatewayProcess, browser: Browser
) -> None:
    page = await open_console(browser, gateway.url, mint("disp-3", ORG, ttl_s=-120), [])
    await expect(page.locator("#conn")).to_have_attribute("data-state", "refused")
    await expect(page.locator("#conn")).to_have_attribute("data-code", "token_expired")
    await expect(page.locator("#conn-text")).to_contain_text("token_expired")


async def test_a_console_opened_mid_shift_shows_what_is_open_and_again_after_reload(
    gateway: GatewayProcess, publisher: Publisher, browser: Browser
) -> None:
    org = "org-midshift"

    def event(event_type: str, serial: int, **data: str) -> dict[str, object]:
        return {
            "event_id": f"mid-{event_type}-{serial}",
            "event_type": event_type,
            "organization_id": org,
            "occurred_at": "2026-12-07T07:00:00Z",
            "data": data,
        }

    for n in range(5):
        await publisher.publish(event("incident_created", n, incident_id=f"i{n}", status="new"))
    for n in (1, 3):
        await publisher.publish(
            event("incident_status_changed", n, incident_id=f"i{n}", status="closed")
        )
    for n in range(3):
        await publisher.publish(event("alert_created", n, alert_id=f"a{n}", severity="high"))
    await publisher.publish(event("alert_acknowledged", 0, alert_id="a0"))
    errors: list[str] = []
    page = await open_console(browser, gateway.url, mint("disp-mid", org), errors)
    for _ in range(2):  # opened, then reloaded: the same picture, from the state snapshots
        await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
        await expect(page.locator("#incident-count")).to_have_text("3")
        await expect(page.locator("#alert-count")).to_have_text("2")
        ids = await page.locator("#incidents li").evaluate_all(
            "items => items.map(i => i.dataset.id)"
        )
        assert sorted(ids) == ["i0", "i2", "i4"]
        await page.reload()
    assert errors == []
