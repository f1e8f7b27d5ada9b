"""Centrifugo as the benchmark drives it: the real v6 binary, real Redis, the load generator.

Needs tools/centrifugo/build.sh to have built Centrifugo (``make bench`` and
``make deps`` do); without it the test fails with the command to run. Small
sizes: this checks the protocol and accounting, the figures come from bench/.
"""

from __future__ import annotations

import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bench import events, measure, servers, tokens
from bench.loadgen.client import ClientSpec
from bench.loadgen.control import LoadGen
from bench.scenarios import common
from fleetcast.devtools.redis import RedisServer

pytestmark = pytest.mark.integration

ORG = "org-cf"


@pytest.fixture
def built() -> None:
    check = servers.REPO / "tools" / "centrifugo" / "build.sh"
    done = subprocess.run([str(check), "--check"], capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{done.stderr.strip()} (run: make deps)"


@pytest.fixture
async def centrifugo(
    built: None, redis_server: RedisServer, tmp_path: Path
) -> AsyncIterator[servers.CentrifugoServer]:
    server = servers.CentrifugoServer(redis_server.url, None, tmp_path)
    await server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def loadgen() -> AsyncIterator[LoadGen]:
    gen = LoadGen(None)
    await gen.start()
    try:
        yield gen
    finally:
        await gen.stop()


async def test_every_subscribed_client_gets_every_publication_once(
    centrifugo: servers.CentrifugoServer, loadgen: LoadGen
) -> None:
    specs = common.client_specs(20, ORG)
    joined = await loadgen.connect(
        centrifugo.host, centrifugo.port, centrifugo.path, specs, protocol=centrifugo.protocol
    )
    assert (joined.connected, joined.failed) == (20, 0)
    publisher = centrifugo.publisher()
    try:
        assert await measure.prime(loadgen, specs, common.batch(1, ORG)[0], publisher.burst) == 20
        burst = common.batch(30, ORG)  # one /api/batch request
        paced = [events.incident_update(s, ORG, "inc-1", "ch-1") for s in range(5)]  # broadcast
        for batch, send in ((burst, publisher.burst), (paced, lambda b: publisher.paced(b, 50))):
            await loadgen.arm(len(batch))
            await send(batch)
            want = measure.expected_deliveries(specs, batch)
            await loadgen.wait_for(want, deadline_s=10.0, idle_s=2.0)
            report = await loadgen.collect(
                [e.rooms for e in batch], [e.category for e in batch], events.CATEGORIES
            )
            acc = report["accounting"]
            assert (acc["received"], acc["lost"], acc["duplicated"]) == (want, 0, 0)
            assert acc["unexpected"] == 0
    finally:
        await publisher.close()


async def test_a_token_signed_with_another_secret_is_refused(
    centrifugo: servers.CentrifugoServer, loadgen: LoadGen
) -> None:
    forged = tokens.token(
        "mallory",
        ORG,
        ["dispatcher"],
        secret="another-secret-0123456789abcdefgh",  # noqa: S106 - a test key
    )
    spec = ClientSpec(forged, (), ("org:" + ORG,))
    joined = await loadgen.connect(
        centrifugo.host, centrifugo.port, centrifugo.path, [spec], protocol=centrifugo.protocol
    )
    assert joined.connected == 0
    assert joined.errors, "a forged token must not connect"
