"""``fleetcast-gateway``: settings, logs, uvloop, serve, drain on SIGTERM.

Exit codes: 0 after a clean shutdown, 2 for invalid configuration (one
message per bad setting, no traceback), 1 when the port cannot be bound.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
import sys
import time
from pathlib import Path

import structlog
import uvloop
from aiohttp import web

from fleetcast.common import logs
from fleetcast.common import settings as common_settings
from fleetcast.gateway.app import GATEWAY, create_app
from fleetcast.gateway.settings import Settings

log = structlog.stdlib.get_logger("fleetcast.gateway")


async def serve(settings: Settings) -> None:
    app = create_app(settings)
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log=None,
        shutdown_timeout=max(1.0, settings.drain_seconds / 5),
    )
    await runner.setup()
    site = web.TCPSite(
        runner, settings.host, settings.port, reuse_address=True, backlog=settings.listen_backlog
    )
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        print(
            f"fleetcast-gateway: cannot listen on {settings.host}:{settings.port}: {exc}",
            file=sys.stderr,
        )
        raise SystemExit(1) from None
    log.info("listening", addresses=[str(a) for a in runner.addresses], path=settings.ws_path)
    # Everything built so far (modules, app) lives as long as the process: out
    # of the collector's sight, a full collection during a connection storm
    # scans the connections only (measured: 170 -> 60 ms at 5,000 clients).
    gc.freeze()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    started = time.monotonic()
    gateway = app[GATEWAY]
    try:
        async with asyncio.timeout(settings.drain_seconds * 0.8):
            report = await gateway.drain(settings.drain_seconds * 0.8)
    except TimeoutError:
        log.warning("drain timed out")
    else:
        _leave_termination_message(settings.termination_log, report.message())
    left = max(0.5, settings.drain_seconds - (time.monotonic() - started))
    try:
        async with asyncio.timeout(left):
            await runner.cleanup()
    except TimeoutError:
        log.warning("shutdown timed out")
    log.info("stopped", seconds=round(time.monotonic() - started, 3))


def _leave_termination_message(path: str, message: str) -> None:
    """Tell whoever stopped us how the drain ended; only into a file the kubelet made."""
    target = Path(path)
    if not path or not target.is_file():
        return
    try:
        target.write_text(message)
    except OSError as exc:
        log.warning("termination message not written", path=path, error=str(exc))


def main() -> None:
    settings = common_settings.load(Settings, "fleetcast-gateway")
    logs.configure(settings.log_level, component="gateway")
    for name in ("socketio.server", "engineio.server", "aiohttp.access"):
        logging.getLogger(name).setLevel(max(logging.WARNING, logging.getLogger().level))
    uvloop.run(serve(settings))


if __name__ == "__main__":
    main()
