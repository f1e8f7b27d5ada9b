"""`make run` (python -m fleetcast.devtools.run): everything starts, events flow, SIGTERM stops all.

Runs on free ports (the FLEETCAST_* overrides), so it never collides with a
developer's own `make run`. The other ways to stop it are in test_runner_signals.py.
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import pytest

from tests.harness.gateway import Client
from tests.harness.kafka import scrape
from tests.integration.runner_support import Ports, Run, killed_on_failure, token_of

pytestmark = pytest.mark.integration


async def test_make_run_starts_everything_delivers_events_and_stops_cleanly(tmp_path: Path) -> None:
    ports = Ports.free()
    run = Run.runner(tmp_path, ports, FLEETCAST_DEMO_RATE="100").start()
    with killed_on_failure(run):
        banner = await run.banner()
        client = Client(f"http://127.0.0.1:{ports.web}")
        try:
            assert await client.connect(token_of(banner))
            ack = await client.call("subscribe", {"room": "fleet"})
            assert ack["ok"], ack
            await client.wait_for("fleet_snapshot", within=60)
            await client.wait_for("asset_positions", within=60)  # the fleet room's batches
        finally:
            await client.close()
        metrics = await scrape(ports.consumer)
        assert metrics["fleetcast_consumer_published_total"] > 0
        assert not any(k.startswith("fleetcast_consumer_dead_lettered") for k in metrics)
        run.process_signal(signal.SIGTERM)
        status = await asyncio.to_thread(run.wait, 60)
    assert status == 0, run.output()
    assert "run: stopped" in run.output()
    assert ports.busy() == []
