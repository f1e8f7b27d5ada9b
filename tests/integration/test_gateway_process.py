"""The gateway as a process (python -m fleetcast.gateway): SIGTERM drain."""

from __future__ import annotations

import asyncio
import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.harness.gateway import SECRET, Client, GatewayProcess, get_json, make_token, wait_until

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]
DRAIN_S = 3.0


async def test_sigterm_drains_and_exits_in_time(
    redis_url: str, clients: ClientFactory, tmp_path: Path
) -> None:
    process = GatewayProcess(
        {
            "FLEETCAST_JWT_SECRET": SECRET,
            "FLEETCAST_REDIS_URL": redis_url,
            "FLEETCAST_DRAIN_SECONDS": str(DRAIN_S),
            "FLEETCAST_GATEWAY_ID": "gw-drain",
        },
        tmp_path,
    ).start()
    try:
        await process.wait_ready()
        staying = [clients(process.url) for _ in range(5)]
        for n, client in enumerate(staying):
            assert await client.connect(make_token(f"u{n}"))
        assert process.proc is not None
        process.proc.send_signal(signal.SIGTERM)
        sent = time.monotonic()
        for _ in range(200):
            status, body = await get_json(f"{process.url}/ready")
            if status == 503:
                break
            await asyncio.sleep(0.01)
        assert (status, body) == (503, {"ready": False})
        assert time.monotonic() - sent < 1.0
        late = clients(process.url)
        assert not await late.connect(make_token("late"))
        assert late.connect_error["code"] == "server_full"
        for client in staying:
            await wait_until(lambda c=client: not c.sio.connected, DRAIN_S, "client sent away")  # type: ignore[misc]
            [notice] = client.received("disconnect_reason")
            assert 0 <= notice.pop("retry_after") <= 1.0  # FLEETCAST_DRAIN_JITTER_S: spread out
            assert notice == {
                "code": "draining",
                "message": "gateway shutting down: reconnect (another gateway will answer)",
                "reconnect": True,
            }
        code = await asyncio.to_thread(process.proc.wait, DRAIN_S + 10)
        elapsed = time.monotonic() - sent
        assert code == 0, process.log()
        # the process's own account: signal to shut down, within DRAIN_SECONDS
        [stopped] = [json.loads(line) for line in process.log().splitlines() if '"stopped"' in line]
        assert stopped["seconds"] < DRAIN_S
        assert elapsed < DRAIN_S + 5, f"exit took {elapsed:.2f}s"  # + interpreter teardown
    finally:
        process.stop()


async def test_a_drain_rate_hands_clients_over_at_that_pace(
    redis_url: str, clients: ClientFactory, tmp_path: Path
) -> None:
    """FLEETCAST_DRAIN_RATE (a rollout's hand-over rate): 30 clients at 20/s take ~1.5 s.

    How it ended is left as the termination message (the operator's lastDrain).
    """
    termination = tmp_path / "termination-log"
    termination.touch()  # the kubelet creates it; the gateway only writes into it
    process = GatewayProcess(
        {
            "FLEETCAST_JWT_SECRET": SECRET,
            "FLEETCAST_REDIS_URL": redis_url,
            "FLEETCAST_DRAIN_SECONDS": "10",
            "FLEETCAST_DRAIN_RATE": "20",
            "FLEETCAST_GATEWAY_ID": "gw-rate",
            "FLEETCAST_TERMINATION_LOG": str(termination),
        },
        tmp_path,
    ).start()
    try:
        await process.wait_ready()
        staying = [clients(process.url) for _ in range(30)]
        for n, client in enumerate(staying):
            assert await client.connect(make_token(f"u{n}"))
        told: list[float] = []
        for client in staying:
            client.sio.on("disconnect_reason", lambda _d: told.append(time.monotonic()))
        assert process.proc is not None
        process.proc.send_signal(signal.SIGTERM)
        await wait_until(lambda: len(told) == len(staying), 10, "every client sent away")
        span = max(told) - min(told)
        assert span >= 1.0, f"30 clients sent away in {span:.2f}s: faster than 20/s"
        assert await asyncio.to_thread(process.proc.wait, 20) == 0
        drain = json.loads(termination.read_text())
        assert (drain["connections"], drain["rate"], drain["remaining"]) == (30, 20.0, 0)
        assert 1.0 <= drain["seconds"] < 3.0
    finally:
        process.stop()
