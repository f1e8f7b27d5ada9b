"""A new user's first `make run`: a fresh clone serves a console that works, and Ctrl-C ends it.

The clone is of this checkout's HEAD (what a user gets: uncommitted changes
are not in it), so it has no git-ignored files: no .venv, no vendor bundle.
`make run` there, on free ports, must install what it needs (cache hits in
~/.cache/fleetcast), print a console URL that a headless Debian chromium
opens, connects with and shows live demo events on (Kafka -> consumer ->
Redis -> gateway), and a Ctrl-C to make's process group must leave nothing
running: not the listed processes, not anything else started from the clone.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psutil  # type: ignore[import-untyped]
import pytest
from playwright.async_api import Browser, expect

from tests.integration.browser_support import browser_fixture  # noqa: F401 (registers browser)
from tests.integration.runner_support import (
    ROOT,
    STOPPED_WITHIN_S,
    Ports,
    Run,
    alive,
    console_url_of,
    gone_within,
    killed_on_failure,
    processes,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

VENDOR_BUNDLE = Path("gateway/fleetcast/gateway/static/vendor/socket.io.min.js")
MAP_BUNDLE = Path("gateway/fleetcast/gateway/static/vendor/leaflet.js")
STEP_MS = 60_000  # the first events go through a broker that has just started


@pytest.fixture
def clone(tmp_path: Path) -> Iterator[Path]:
    target = tmp_path / "fleetcast"
    subprocess.run(["git", "clone", "--quiet", str(ROOT), str(target)], check=True, timeout=120)
    try:
        yield target
    finally:
        shutil.rmtree(target, ignore_errors=True)  # its .venv is large


def started_from(clone: Path) -> list[str]:
    """Live processes whose command line or working dir is inside the clone."""
    found = []
    for process in psutil.process_iter(["cmdline", "cwd"]):
        cmdline = " ".join(process.info["cmdline"] or [])
        cwd = process.info["cwd"] or ""
        if (str(clone) in cmdline or cwd.startswith(str(clone))) and alive(process):
            found.append(f"{process.pid} {cmdline[:120]}")
    return found


async def test_make_run_on_a_fresh_clone_serves_a_working_console(
    clone: Path, tmp_path: Path, browser: Browser
) -> None:
    assert not (clone / VENDOR_BUNDLE).exists()
    assert not (clone / MAP_BUNDLE).exists()
    assert not (clone / ".venv").exists()
    ports = Ports.free()
    run = Run.make(tmp_path, ports, cwd=clone, run_dir=clone / ".run").start()  # the default
    with killed_on_failure(run):
        banner = await run.banner()
        procs = processes(run.run_dir)
        page = await browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(STEP_MS)
        await page.goto(console_url_of(banner))
        await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
        await expect(page.locator('#rooms li[data-room="fleet"]')).to_have_attribute(
            "data-state", "ok"
        )
        await expect(page.locator("#feed tr").first).to_be_visible()  # live demo events
        await expect(page.locator("#map path.asset").first).to_be_attached()  # units on the map
        assert errors == []
        await page.close()
        assert (clone / VENDOR_BUNDLE).exists()  # make run put them there
        assert (clone / MAP_BUNDLE).exists()
        started = time.monotonic()
        run.signal_group(signal.SIGINT)  # Ctrl-C in its terminal
        await gone_within(procs, STOPPED_WITHIN_S)
        print(f"\nfresh clone: Ctrl-C -> everything gone in {time.monotonic() - started:.2f}s")
        run.wait()
    assert ports.busy() == []
    assert started_from(clone) == []
