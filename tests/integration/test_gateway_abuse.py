"""An authenticated client that abuses the gateway is cut off, and nobody else notices.

Each test runs the gateway as a process (so its memory and its log are
measured from outside, as an attacker's effect would be) and an abusive raw
websocket client next to a well-behaved python-socketio client of another
org, which must keep getting its alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import psutil  # type: ignore[import-untyped]
import pytest
import redis.asyncio as aioredis

from bench.loadgen import codec
from fleetcast.protocol import keys, wire
from tests.harness.gateway import (
    SECRET,
    Client,
    GatewayProcess,
    make_token,
    metric,
    scrape,
)
from tests.integration.raw_clients import SlowReader

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]
RawFactory = Callable[..., SlowReader]
#: Bounded load loops: frames per sendall, and at most this many in all.
CHUNK = 500


@contextlib.asynccontextmanager
async def gateway_process(
    redis_url: str, tmp_path: Path, **env: str
) -> AsyncIterator[GatewayProcess]:
    process = GatewayProcess(
        {
            "FLEETCAST_REDIS_URL": redis_url,
            "FLEETCAST_JWT_SECRET": SECRET,
            "FLEETCAST_GATEWAY_ID": f"abuse-{tmp_path.name}",
            "FLEETCAST_DRAIN_SECONDS": "1",
            **env,
        },
        tmp_path,
    ).start()
    try:
        await process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture
def raw() -> Iterator[RawFactory]:
    """Factory of raw websocket clients, all closed after the test."""
    made: list[SlowReader] = []

    def factory(port: int, **kwargs: Any) -> SlowReader:
        made.append(SlowReader(port, **kwargs))
        return made[-1]

    yield factory
    for reader in made:
        reader.close()


def rss(process: GatewayProcess) -> int:
    assert process.proc is not None
    return int(psutil.Process(process.proc.pid).memory_info().rss)


async def flood(reader: SlowReader, frames: list[bytes], total: int) -> int:
    """Send ``total`` client frames (cycling ``frames``) without reading; returns how many went."""
    loop, sent = asyncio.get_running_loop(), 0
    chunk = b"".join(codec.client_frame(f) for f in frames * (CHUNK // len(frames)))
    per_chunk = (CHUNK // len(frames)) * len(frames)
    with contextlib.suppress(OSError):
        while sent < total:
            async with asyncio.timeout(10):
                await loop.sock_sendall(reader.sock, chunk)
            sent += per_chunk
    return sent


def alert(n: int, org: str) -> bytes:
    event = {"event_id": f"a{n}", "event_type": "alert_created", "organization_id": org,
             "occurred_at": "2026-11-25T18:00:00Z", "data": {}}  # fmt: skip
    return wire.encode(org, [wire.RoutedEvent((f"org:{org}",), {}, event)])


async def bystander_gets_alerts(redis_url: str, client: Client, count: int) -> None:
    async with aioredis.Redis.from_url(redis_url) as redis:
        for n in range(count):
            await redis.publish(keys.org_channel("o2"), alert(n, "o2"))
    await client.wait_for("alert_created", count, 10)


async def bystander(clients: ClientFactory, url: str) -> Client:
    client = clients(url)
    assert await client.connect(make_token("bystander", "o2"))
    await client.wait_for("session")
    return client


async def violations(url: str, code: str) -> float:
    return metric(await scrape(url), "fleetcast_gateway_client_violations_total", code=code)


async def test_a_subscribe_flood_that_never_reads_is_cut_off_and_costs_nothing_lasting(
    redis_url: str, tmp_path: Path, raw: RawFactory, clients: ClientFactory
) -> None:
    async with gateway_process(redis_url, tmp_path) as gateway:
        other = await bystander(clients, gateway.url)
        before = rss(gateway)
        flooder = raw(gateway.port, rcvbuf=4096)
        await flooder.connect(make_token("flooder"))
        subscribe = codec.sio_event("subscribe", {"room": "channel:x"}, 1)
        await flood(flooder, [subscribe], 100_000)
        for _ in range(100):
            if await violations(gateway.url, "too_many_requests") == 1:
                break
            await asyncio.sleep(0.05)
        assert await violations(gateway.url, "too_many_requests") == 1
        await bystander_gets_alerts(redis_url, other, 5)
        grown = (rss(gateway) - before) / 2**20
        assert grown < 40, f"RSS grew {grown:.0f} MB"  # was +227 MB before the limits


async def test_acks_count_against_what_a_client_may_leave_unread(
    redis_url: str, tmp_path: Path, raw: RawFactory, clients: ClientFactory
) -> None:
    """With the request limits out of the way, the unread-output bound still stops the flood."""
    async with gateway_process(
        redis_url,
        tmp_path,
        FLEETCAST_REQUEST_RATE="1000000",
        FLEETCAST_REQUEST_BURST="1000000",
        FLEETCAST_MAX_REQUESTS_IN_FLIGHT="1000000",
        FLEETCAST_SUBSCRIBE_BURST="1000000",
        FLEETCAST_MAX_UNSENT_BYTES="262144",
    ) as gateway:
        other = await bystander(clients, gateway.url)
        flooder = raw(gateway.port, rcvbuf=4096)
        await flooder.connect(make_token("flooder"))
        await flood(flooder, [codec.sio_event("subscribe", {"room": "channel:x"}, 1)], 60_000)
        for _ in range(100):
            if await violations(gateway.url, "slow_consumer") == 1:
                break
            await asyncio.sleep(0.05)
        assert await violations(gateway.url, "slow_consumer") == 1
        await bystander_gets_alerts(redis_url, other, 3)


async def test_binary_attachments_are_refused_before_any_is_held(
    redis_url: str, tmp_path: Path, raw: RawFactory, clients: ClientFactory
) -> None:
    async with gateway_process(redis_url, tmp_path) as gateway:
        other = await bystander(clients, gateway.url)
        before = rss(gateway)
        attacker = raw(gateway.port)
        await attacker.connect(make_token("attacker"))
        announce = b'4599999999-["subscribe",{"_placeholder":true,"num":0}]'
        await attacker.send(announce)
        blob = codec.client_frame(b"\x04" + b"\0" * 60_000, codec.OP_BINARY)
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            for _ in range(1000):  # up to 60 MB
                async with asyncio.timeout(10):
                    await loop.sock_sendall(attacker.sock, blob)
        assert await violations(gateway.url, "binary_refused") == 1
        await bystander_gets_alerts(redis_url, other, 3)
        grown = (rss(gateway) - before) / 2**20
        assert grown < 20, f"RSS grew {grown:.0f} MB"  # was +53 MB held while it lived


async def test_malformed_packets_close_the_connection_after_a_few_and_log_little(
    redis_url: str, tmp_path: Path, raw: RawFactory
) -> None:
    async with gateway_process(redis_url, tmp_path) as gateway:
        attacker = raw(gateway.port)
        await attacker.connect(make_token("attacker"))
        await flood(attacker, [b"42["], 5_000)
        for _ in range(100):
            if await violations(gateway.url, "protocol_error") == 1:
                break
            await asyncio.sleep(0.05)
        assert await violations(gateway.url, "protocol_error") == 1
        samples = await scrape(gateway.url)
        assert metric(samples, "fleetcast_gateway_client_protocol_errors_total") == 3
        assert metric(samples, "fleetcast_gateway_disconnects_total", reason="protocol_error") == 1
        log = gateway.log()
        assert "Traceback" not in log
        assert log.count("client broke a limit") <= 2  # the first of each kind, not 5,000


async def test_tokens_valid_for_too_long_are_refused(
    redis_url: str, tmp_path: Path, raw: RawFactory, clients: ClientFactory
) -> None:
    async with gateway_process(redis_url, tmp_path) as gateway:
        for exp in (time.time() + 100 * 365 * 86400, 1e18):
            client = clients(gateway.url)
            assert not await client.connect(make_token("u", exp=exp))
            assert client.connect_error is not None
            assert client.connect_error["code"] == "invalid_token"


async def test_refresh_cannot_extend_a_session_past_its_maximum_age(
    redis_url: str, tmp_path: Path, raw: RawFactory, clients: ClientFactory
) -> None:
    async with gateway_process(redis_url, tmp_path, FLEETCAST_MAX_SESSION_AGE_S="2") as gateway:
        client = clients(gateway.url)
        assert await client.connect(make_token("u", ttl=3600))
        ack = await client.call("refresh", {"token": make_token("u", ttl=3600)})
        assert ack["ok"] is True
        [notice] = await client.wait_for("disconnect_reason", 1, 10)
        assert notice["code"] == "session_expired"
        assert notice["reconnect"] is True


async def test_a_malformed_since_at_connect_is_refused_with_a_code(
    redis_url: str, tmp_path: Path, raw: RawFactory, clients: ClientFactory
) -> None:
    async with gateway_process(redis_url, tmp_path) as gateway:
        for since in ({"org": "yesterday"}, "not an object", {"org": "1-0"}):
            client = clients(gateway.url)
            auth: dict[str, Any] = {"token": make_token("u"), "since": since}
            assert not await client.connect(auth=auth)
            assert client.connect_error is not None
            assert client.connect_error["code"] == "invalid_offset"
