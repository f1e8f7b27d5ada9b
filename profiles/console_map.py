"""What the console's map costs the browser: drawing N units, then moving all of them.

Serves the console's static files (the gateway's edge/console.py routes, no
Redis, tiles at a closed loopback port) and, in Debian's headless chromium,
imports static/js/map.js into the page, draws N units at once (a fleet
snapshot), then moves every one of them ten times (ten ``asset_positions``
batches in which all N moved: the worst case, once per second in real use).
Prints the script time of each step as JSON lines; style, layout and paint
come on top. No timing is asserted anywhere: this is a reading, not a test.

    PYTHONPATH=. .venv/bin/python profiles/console_map.py 500 2500 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import json

from aiohttp import web
from playwright.async_api import async_playwright

from fleetcast.devtools.ports import free_port
from fleetcast.gateway.edge import console
from tests.integration.browser_support import CHROMIUM, CHROMIUM_ARGS
from tests.integration.clients_support import OFFLINE_TILES

#: Runs in the page: a FleetMap of its own in place of the console's, fed N units.
MEASURE = """async (n) => {
  const { FleetMap } = await import("/js/map.js");
  const old = document.querySelector(".map-wrap").firstElementChild;
  const box = document.createElement("div");
  box.style.cssText = "position:absolute;inset:0";
  old.replaceWith(box);
  const map = new FleetMap(box, { onSelect() {}, onChange() {} });
  const frames = () => new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const batch = (k) => Array.from({ length: n }, (_, i) => ({
    asset_id: `u-${i}`, speed_kmh: 30,
    lat: 40.7 + ((i * 7919) % 1000) / 10000 + k * 1e-4, lon: -74 + ((i * 104729) % 1000) / 10000,
  }));
  let t = performance.now();
  map.positions(batch(0), Date.now());
  await frames();
  const first = performance.now() - t;
  const moves = [];
  for (let k = 1; k <= 10; k += 1) {
    const list = batch(k);
    t = performance.now();
    map.positions(list, Date.now());
    map.draw();
    moves.push(performance.now() - t);
  }
  moves.sort((a, b) => a - b);
  t = performance.now();
  map.redrawHighlights();
  return {
    units: n, dots: box.querySelectorAll("path.asset").length, first_draw_ms: first,
    move_all_median_ms: moves[5], move_all_max_ms: moves[9], highlights_ms: performance.now() - t,
  };
}"""


async def measure(counts: list[int], runs: int) -> None:
    app = web.Application()
    console.add_routes(app, True, console.MapConfig(OFFLINE_TILES))
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            for n in counts:
                page = await browser.new_page(viewport={"width": 1600, "height": 900})
                await page.goto(f"http://127.0.0.1:{port}/")
                for _ in range(runs):
                    reading = await page.evaluate(MEASURE, n)
                    print(json.dumps({k: round(v, 1) for k, v in reading.items()}))
                await page.close()
            await browser.close()
    finally:
        await runner.cleanup()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("counts", nargs="*", type=int, default=[500, 2500])
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(measure(args.counts, args.runs))


if __name__ == "__main__":
    main()
