"""`make run` (python -m fleetcast.devtools.run): everything starts, events flow, SIGTERM stops all.

Runs on free ports (the FLEETCAST_* overrides), so it never collides with a
developer's own `make run`.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fleetcast.devtools.kafka import free_port
from tests.harness.gateway import Client
from tests.harness.kafka import scrape

pytestmark = pytest.mark.integration

START_TIMEOUT_S = 180.0


def port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def spawn(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fleetcast.devtools.run"],
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def read(log: Path) -> str:
    return log.read_text(errors="replace")


async def wait_for_banner(process: subprocess.Popen[bytes], log: Path) -> str:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        text = read(log)
        if "Ctrl-C stops everything" in text:
            return text
        assert process.poll() is None, text
        await asyncio.sleep(0.2)
    raise AssertionError(f"no banner after {START_TIMEOUT_S:.0f}s:\n{read(log)}")


async def test_make_run_starts_everything_delivers_events_and_stops_cleanly(tmp_path: Path) -> None:
    ports = {name: free_port() for name in ("PORT", "CONSUMER_PORT", "KAFKA_PORT", "REDIS_PORT")}
    env = {f"FLEETCAST_{name}": str(port) for name, port in ports.items()}
    env |= {"FLEETCAST_RUN_DIR": str(tmp_path / "run"), "FLEETCAST_DEMO_RATE": "100"}
    log = tmp_path / "run.log"
    process = spawn(env, log)
    try:
        banner = await wait_for_banner(process, log)
        token = re.search(r"^  (ey[\w-]+\.[\w-]+\.[\w-]+)$", banner, re.MULTILINE)
        assert token, banner
        client = Client(f"http://127.0.0.1:{ports['PORT']}")
        try:
            assert await client.connect(token.group(1))
            ack = await client.call("subscribe", {"room": "fleet"})
            assert ack["ok"], ack
            await client.wait_for("fleet_snapshot", within=60)
            await client.wait_for("asset_positions", within=60)  # the fleet room's batches
        finally:
            await client.close()
        metrics = await scrape(ports["CONSUMER_PORT"])
        assert metrics["fleetcast_consumer_published_total"] > 0
        assert not any(k.startswith("fleetcast_consumer_dead_lettered") for k in metrics)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        status = await asyncio.to_thread(process.wait, 60)
    assert status == 0, read(log)
    assert "run: stopped" in read(log)
    assert not [name for name, port in ports.items() if port_open(port)]
