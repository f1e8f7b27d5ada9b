"""fleetcast-client as a user runs it: a subprocess against a real gateway and Redis.

Events enter through Redis exactly as the consumer publishes them
(clients_support.Publisher), so what the CLI prints is what any client of
the public protocol would receive.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.clients_support import (  # the fixtures register as gateway, publisher
    SECRET,
    GatewayProcess,
    Publisher,
    envelope,
    gateway_fixture,  # noqa: F401
    mint,
    publisher_fixture,  # noqa: F401
)

pytestmark = pytest.mark.integration

STEP_TIMEOUT_S = 20.0


@pytest.fixture
def org() -> str:
    return f"org-{uuid.uuid4().hex[:8]}"


class Cli:
    """One ``fleetcast-client`` process; stdout and stderr are read as they come."""

    def __init__(self, *args: str, secret: str | None = None) -> None:
        self.args = args
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCAST_")}
        if secret:
            self.env["FLEETCAST_JWT_SECRET"] = secret
        self.out: list[str] = []
        self.err: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self.readers: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> Cli:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "fleetcast.client", *self.args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            env=self.env,
        )  # fmt: skip
        assert self.proc.stdout is not None
        assert self.proc.stderr is not None
        self.readers = [
            asyncio.create_task(self._read(self.proc.stdout, self.out)),
            asyncio.create_task(self._read(self.proc.stderr, self.err)),
        ]
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.proc is not None
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        await asyncio.gather(*self.readers, return_exceptions=True)

    @staticmethod
    async def _read(stream: asyncio.StreamReader, into: list[str]) -> None:
        async for line in stream:
            into.append(line.decode().rstrip("\n"))

    def statuses(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.err if line.startswith("{")]

    def events(self) -> list[dict[str, Any]]:
        return [orjson.loads(line) for line in self.out]

    async def wait_for(self, predicate: Any, what: str) -> None:
        deadline = time.monotonic() + STEP_TIMEOUT_S
        while not predicate():
            assert self.proc is not None
            if self.proc.returncode is not None or time.monotonic() > deadline:
                raise AssertionError(f"no {what}; stderr:\n" + "\n".join(self.err))
            await asyncio.sleep(0.05)

    async def wait_status(self, kind: str, count: int = 1) -> None:
        await self.wait_for(
            lambda: sum(s.get("status") == kind for s in self.statuses()) >= count,
            f"{kind} x{count}",
        )

    async def finish(self) -> int:
        assert self.proc is not None
        code = await asyncio.wait_for(self.proc.wait(), STEP_TIMEOUT_S)
        await asyncio.gather(*self.readers)
        return code

    def summary(self) -> dict[str, Any]:
        found = [s["summary"] for s in self.statuses() if "summary" in s]
        assert found, "\n".join(self.err)
        summary: dict[str, Any] = found[-1]
        return summary


def listen(gateway: GatewayProcess, token: str, *args: str) -> Cli:
    return Cli("--url", gateway.url, "--token", token, "--json", "--duration", "60", *args)


async def test_json_lines_are_the_events_of_the_org_and_rooms_and_nothing_else(
    gateway: GatewayProcess, publisher: Publisher, org: str
) -> None:
    token = mint("disp-1", org)
    async with listen(gateway, token, "--room", "channel:ch-3", "--max-events", "3") as cli:
        await cli.wait_status("subscribed")
        await publisher.wait_listener(org)
        sent = [
            envelope("incident_created", org, incident_id="inc-1", channel_id="ch-9", priority=1),
            envelope("transmission_started", org, channel_id="ch-9", transmission_id="tx-0"),
            envelope("alert_created", "org-other", alert_id="al-x"),
            envelope("transmission_started", org, channel_id="ch-3", transmission_id="tx-1"),
            envelope("alert_created", org, alert_id="al-1", severity="critical"),
        ]
        offsets = [await publisher.publish(doc) for doc in sent]
        assert await cli.finish() == 0

    got = cli.events()
    expected = [(sent[0], "org"), (sent[3], "channel:ch-3"), (sent[4], "org")]
    assert [e["event_id"] for e in got] == [doc["event_id"] for doc, _ in expected]
    for event, (doc, room) in zip(got, expected, strict=True):
        assert {k: event[k] for k in doc} == doc
        assert event["room"] == room
    assert got[1]["offset"] == offsets[3][f"channel:ch-3:org:{org}"]
    summary = cli.summary()
    assert summary["events"] == 3
    assert summary["by_type"] == {
        "alert_created": 1,
        "incident_created": 1,
        "transmission_started": 1,
    }
    assert summary["latency_ms"]["samples"] == 3
    assert 0 <= summary["latency_ms"]["p50"] < 10_000


@pytest.mark.parametrize(
    ("token", "code"),
    [("not-a-jwt", "invalid_token"), (mint("disp-1", "org-x", ttl_s=-120), "token_expired")],
)
async def test_a_refused_connection_exits_3_with_the_server_code(
    gateway: GatewayProcess, token: str, code: str
) -> None:
    async with listen(gateway, token) as cli:
        assert await cli.finish() == 3
    refused = [s for s in cli.statuses() if s.get("status") == "refused"]
    assert [s["code"] for s in refused] == [code]


async def test_refused_subscriptions_report_their_code_and_exit_5(
    gateway: GatewayProcess, org: str
) -> None:
    token = mint("unit-7", org, ("field_unit",), channels=("ch-1",))
    rooms = ["--room", "channel:ch-1", "--room", "channel:ch-2", "--room", "channel:ch-1:org:x"]
    async with listen(gateway, token, *rooms, "--duration", "3") as cli:
        assert await cli.finish() == 5
    answers = {
        s.get("room"): s for s in cli.statuses() if s.get("status") in ("subscribed", "refused")
    }
    assert answers["channel:ch-1"]["status"] == "subscribed"
    assert answers["channel:ch-2"]["code"] == "forbidden"
    assert answers["channel:ch-1:org:x"]["code"] == "invalid_room"


async def test_since_delivers_the_missed_events_in_order(
    gateway: GatewayProcess, publisher: Publisher, org: str
) -> None:
    sent = [
        envelope("transmission_started", org, channel_id="ch-3", transmission_id=f"tx-{i}")
        for i in range(4)
    ]
    offsets = [(await publisher.publish(doc))[f"channel:ch-3:org:{org}"] for doc in sent]
    token = mint("disp-1", org)
    args = ["--room", "channel:ch-3", "--since", offsets[0], "--max-events", "3"]
    args += ["--transport", "polling"]  # long-polling works as well as websocket
    async with listen(gateway, token, *args) as cli:
        assert await cli.finish() == 0
    assert [e["event_id"] for e in cli.events()] == [doc["event_id"] for doc in sent[1:]]
    assert [e["offset"] for e in cli.events()] == offsets[1:]
    acks = [s["ack"] for s in cli.statuses() if s.get("status") == "subscribed"]
    assert acks[0]["recovered"] is True


async def test_resumes_after_a_gateway_crash_without_losing_events(
    redis_url: str, tmp_path: Path, publisher: Publisher, org: str
) -> None:
    first = GatewayProcess(redis_url, tmp_path).start()
    second = GatewayProcess(redis_url, tmp_path, port=first.port)
    try:
        token = mint("disp-1", org)
        async with listen(first, token, "--room", "channel:ch-3", "--max-events", "3") as cli:
            await cli.wait_status("subscribed")
            await publisher.wait_listener(org)
            before = envelope(
                "transmission_started", org, channel_id="ch-3", transmission_id="tx-a"
            )
            await publisher.publish(before)
            await cli.wait_for(lambda: len(cli.out) >= 1, "first event")
            first.kill()
            # Published while no gateway runs: only the room's history has these.
            during = [
                envelope("transmission_started", org, channel_id="ch-3", transmission_id=f"tx-{i}")
                for i in ("b", "c")
            ]
            for doc in during:
                await publisher.publish(doc)
            await asyncio.to_thread(second.start)
            assert await cli.finish() == 0
    finally:
        first.stop()
        second.stop()
    ids = [e["event_id"] for e in cli.events()]
    assert ids == [doc["event_id"] for doc in (before, *during)]
    acks = [s["ack"] for s in cli.statuses() if s.get("status") == "subscribed"]
    assert len(acks) == 1  # the second time the room was resumed at connect (auth since)
    sessions = [s["session"] for s in cli.statuses() if s.get("status") == "session"]
    assert sessions[-1]["recovered"] == {"channel:ch-3": True}


async def test_token_command_and_mint_reach_the_gateway_as_the_claimed_user(
    gateway: GatewayProcess, publisher: Publisher, org: str
) -> None:
    async with Cli(
        "token", "--sub", "viewer-3", "--org", org, "--role", "viewer", secret=SECRET
    ) as maker:
        assert await maker.finish() == 0
    assert "DEV token" in "\n".join(maker.err)
    (token,) = maker.out
    async with listen(gateway, token, "--duration", "2") as cli:
        assert await cli.finish() == 0
    (session,) = [s["session"] for s in cli.statuses() if s.get("status") == "session"]
    assert (session["user"], session["org"], session["roles"]) == ("viewer-3", org, ["viewer"])

    args = ("--url", gateway.url, "--mint", "--org", org, "--sub", "disp-9", "--color", "never")
    async with Cli(*args, "--max-events", "1", "--duration", "60", secret=SECRET) as pretty:
        await pretty.wait_for(lambda: any("[session]" in line for line in pretty.err), "session")
        await publisher.wait_listener(org)
        await publisher.publish(
            envelope("alert_created", org, alert_id="al-9", severity="critical")
        )
        assert await pretty.finish() == 0
    (line,) = pretty.out
    assert "alert_created" in line
    assert "alert_id=al-9" in line
    assert "\033[" not in line
    text = "\n".join(pretty.err)
    assert f"disp-9 @ {org}" in text
    assert "summary  1 events" in text
    assert "p50" in text


async def test_minted_tokens_are_refreshed_before_they_expire(
    gateway: GatewayProcess, org: str
) -> None:
    args = ("--url", gateway.url, "--mint", "--org", org, "--ttl", "3", "--json", "--duration", "4")
    async with Cli(*args, secret=SECRET) as cli:
        assert await cli.finish() == 0
    (session,) = [s["session"] for s in cli.statuses() if s.get("status") == "session"]
    refreshes = [s["ack"] for s in cli.statuses() if s.get("status") == "refresh"]
    assert refreshes, "\n".join(cli.err)
    assert refreshes[0]["ok"] is True
    assert refreshes[0]["expires_at"] > session["expires_at"]
