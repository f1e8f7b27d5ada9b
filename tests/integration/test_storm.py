"""A reconnect storm: 1,000 clients on gateway A, A SIGKILLed, all onto gateway B within 2 s.

Both gateways are ``python -m fleetcast.gateway`` processes on one real Redis;
the clients are lean raw-websocket protocols in this process
(:mod:`bench.storm`), each in its org and user rooms, resuming both with
``auth.since`` after the kill and retrying ``rate_limited`` refusals after
their ``retry_after``. Events are written as the consumer writes them (its
publish script) before, during and after the kill. B's admission is set
below what it can do so the storm meets refusals.

Sized for the 2-core test machine: 1,000 clients here; the ``storm-pod``
benchmark runs 5,000 (``python -m bench --scenario storm-pod``). Timings are
printed, never asserted; what is asserted: everyone is back, the refused
clients came back after their hint and were let in, nothing was lost or
received twice.
"""

from __future__ import annotations

import os
import resource
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import redis.asyncio as aioredis

from bench.storm.run import ConsumerScript, Plan, Storm
from fleetcast.devtools.redis import RedisServer
from tests.harness.gateway import SECRET, GatewayProcess, make_token, metric, scrape

pytestmark = pytest.mark.integration

CLIENTS = 1000
ORG = "org-storm"
#: B admits 100 handshakes/s after a burst of 100: ~900 clients are refused once.
B_RATE, B_BURST = 100, 100


@pytest.fixture
def gateways(redis_server: RedisServer, tmp_path: Path) -> Iterator[tuple[GatewayProcess, ...]]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 3 * CLIENTS + 1000)), hard))
    base = {
        "FLEETCAST_REDIS_URL": redis_server.url,
        "FLEETCAST_JWT_SECRET": SECRET,
        "FLEETCAST_LOG_LEVEL": "WARNING",
        "FLEETCAST_CONSOLE_ENABLED": "false",
    }
    a = GatewayProcess(
        {
            **base,
            "FLEETCAST_GATEWAY_ID": "storm-a",
            "FLEETCAST_HANDSHAKE_RATE": "100000",
            "FLEETCAST_HANDSHAKE_BURST": "100000",
        },
        tmp_path,
    )
    b = GatewayProcess(
        {
            **base,
            "FLEETCAST_GATEWAY_ID": "storm-b",
            "FLEETCAST_HANDSHAKE_RATE": str(B_RATE),
            "FLEETCAST_HANDSHAKE_BURST": str(B_BURST),
        },
        tmp_path,
    )
    a.start()
    b.start()
    try:
        yield a, b
    finally:
        a.stop()
        b.stop()


@pytest.fixture
async def redis(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.Redis.from_url(redis_url)
    try:
        yield client
    finally:
        await client.aclose()


async def test_all_clients_resume_on_the_other_gateway_without_loss(
    gateways: tuple[GatewayProcess, GatewayProcess], redis: aioredis.Redis
) -> None:
    a, b = gateways
    await a.wait_ready()
    await b.wait_ready()
    users = [f"unit-{i}" for i in range(CLIENTS)]
    tokens = [make_token(user, ORG, ("field_unit",), ttl=3600) for user in users]
    plan = Plan(CLIENTS, org=ORG, org_events_per_s=5, user_events_per_s=100)
    storm = Storm(plan, tokens, users, ConsumerScript(redis))
    try:
        assert await storm.connect(a.port, within_s=180) == CLIENTS
        assert await storm.prime(), "every client holds an offset in its org and user rooms"
        assert a.proc is not None
        report = await storm.run(a.proc.kill, b.port)
    finally:
        await storm.close()
    samples = await scrape(b.url)
    refused_by_b = metric(samples, "fleetcast_gateway_connect_refusals_total", code="rate_limited")
    print(f"\nstorm of {CLIENTS} (pid {os.getpid()}): {report.as_dict()}")

    assert report.reconnected == CLIENTS
    assert report.lost == 0, report.as_dict()
    assert report.duplicates == 0, "a resume replayed an event the client already had"
    assert report.not_recovered == 0  # every resume found its history complete
    assert report.refusals > 0
    assert report.refusals == refused_by_b
    assert report.retried_early == 0
    assert report.max_refusals_per_client <= 3  # booked retries mostly get in at once
    assert report.published_org > 0
    assert report.published_user > 0
