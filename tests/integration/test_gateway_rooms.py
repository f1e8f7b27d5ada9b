"""Rooms over real Socket.IO: role policy, cross-org attempts, limits, refresh, expiry."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from tests.harness.gateway import (
    Client,
    RunningGateway,
    gateway_settings,
    make_token,
    metric,
    scrape,
    start_gateway,
    wait_until,
)

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]

ROOMS = ["org", "fleet", "user:me", "user:other", "channel:c1", "channel:c2",
         "incident:i1", "asset:a1", "asset:a2"]  # fmt: skip
ALLOWED = {
    "admin": set(ROOMS),
    "supervisor": set(ROOMS),
    "dispatcher": set(ROOMS),
    "field_unit": {"org", "user:me", "channel:c1", "asset:a1"},
    "viewer": {"org", "fleet", "user:me"},
}


async def connected(factory: ClientFactory, url: str, token: str) -> Client:
    client = factory(url)
    assert await client.connect(token)
    await client.wait_for("session")
    return client


@pytest.mark.parametrize("role", sorted(ALLOWED))
async def test_role_policy(gateway: RunningGateway, clients: ClientFactory, role: str) -> None:
    token = make_token("me", "o1", [role], channels=["c1"], assets=["a1"])
    client = await connected(clients, gateway.url, token)
    answers = {room: await client.call("subscribe", {"room": room}) for room in ROOMS}
    assert {room for room, ack in answers.items() if ack["ok"]} == ALLOWED[role]
    for room, ack in answers.items():
        if ack["ok"]:
            assert ack["room"] == room
        else:
            assert ack["error"]["code"] == "forbidden"


HOSTILE: list[Any] = [
    "channel:c1:org:o2", "org:o2", "fleet:org:o2", "user:u1:org:o2", "channel:c1:org:o1",
    "channel:", "channel", ":o2", "channel:c1 ", "channel:c\u00e9", "channel:\u0441h",
    "incident:" + "i" * 129, "x" * 10_000, "CHANNEL:c1", "teams:t1", "org:", "channel:c1\n",
    None, 42, ["channel:c1"], {"room": "org"}, True,
]  # fmt: skip


async def test_cross_org_and_malformed_rooms(
    gateway: RunningGateway, clients: ClientFactory
) -> None:
    admin = await connected(clients, gateway.url, make_token("me", "o1", ["admin"]))
    for room in HOSTILE:
        ack = await admin.call("subscribe", {"room": room})
        assert ack["ok"] is False, room
        assert ack["error"]["code"] in {"invalid_room", "unknown_room"}, (room, ack)
    for payload in [None, "channel:c1", 5, ["org"], {"rooms": "org"}]:
        ack = await admin.call("subscribe", payload)
        assert ack["error"]["code"] == "invalid_room", payload
    session_rooms = gateway.gateway.registry.get(admin.sio.get_sid())
    assert session_rooms is not None
    assert session_rooms.rooms == {"org:o1", "user:me:org:o1"}
    assert all(name.endswith(":o1") for name in gateway.gateway.registry.rooms)


async def test_unsubscribe_and_idempotent_subscribe(
    gateway: RunningGateway, clients: ClientFactory
) -> None:
    client = await connected(clients, gateway.url, make_token())
    assert (await client.call("subscribe", {"room": "channel:c1"}))["ok"]
    assert (await client.call("subscribe", {"room": "channel:c1"}))["ok"]
    conn = gateway.gateway.registry.get(client.sio.get_sid())
    assert conn is not None
    assert "channel:c1:org:o1" in conn.rooms
    assert await client.call("unsubscribe", {"room": "channel:c1"}) == {
        "ok": True,
        "room": "channel:c1",
    }
    assert "channel:c1:org:o1" not in conn.rooms
    assert (await client.call("unsubscribe", {"room": "channel:c1:org:o2"}))["ok"] is False


async def test_max_rooms_and_subscribe_rate(redis_url: str, clients: ClientFactory) -> None:
    settings = gateway_settings(
        redis_url, max_rooms_per_connection=4, subscribe_rate=1.0, subscribe_burst=3
    )
    running = await start_gateway(settings)
    try:
        client = await connected(clients, running.url, make_token())
        acks = [await client.call("subscribe", {"room": f"channel:c{i}"}) for i in range(4)]
        assert [a["ok"] for a in acks[:2]] == [True, True]
        assert acks[2]["error"]["code"] == "too_many_rooms"
        assert acks[3]["error"]["code"] == "rate_limited"
        assert 0 < acks[3]["error"]["retry_after"] <= 1.0
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_subscribes_total", result="rate_limited") == 1
        assert metric(samples, "fleetcast_gateway_subscribes_total", result="too_many_rooms") == 1
    finally:
        await running.stop()


async def test_refresh_extends_and_narrows(gateway: RunningGateway, clients: ClientFactory) -> None:
    client = await connected(clients, gateway.url, make_token("me", "o1", ["dispatcher"], ttl=60))
    assert (await client.call("subscribe", {"room": "incident:i1"}))["ok"]
    ack = await client.call("refresh", {"token": make_token("me", "o1", ["viewer"], ttl=600)})
    assert ack["ok"] is True
    assert ack["left"] == ["incident:i1"]
    edge = gateway.gateway.clients.get(client.sio.get_sid())
    assert edge is not None
    assert edge.claims.roles == ("viewer",)
    for token, code in [
        (make_token("someone-else", "o1"), "forbidden"),
        (make_token("me", "o2"), "forbidden"),
        (make_token("me", "o1", ttl=-30), "token_expired"),
        ("garbage", "invalid_token"),
        (None, "invalid_token"),
    ]:
        ack = await client.call("refresh", {"token": token})
        assert ack["error"]["code"] == code


async def test_expired_connection_is_disconnected(redis_url: str, clients: ClientFactory) -> None:
    running = await start_gateway(gateway_settings(redis_url, jwt_leeway_s=0))
    try:
        short = await connected(clients, running.url, make_token("short", ttl=1.2))
        refreshed = await connected(clients, running.url, make_token("long", ttl=1.2))
        ack = await refreshed.call("refresh", {"token": make_token("long", ttl=300)})
        assert ack["ok"]
        [notice] = await short.wait_for("disconnect_reason", within=5)
        assert notice["code"] == "token_expired"
        assert notice["reconnect"] is False
        await wait_until(lambda: not short.sio.connected, 5, "expired client disconnected")
        assert refreshed.sio.connected
        samples = await scrape(running.url)
        assert metric(samples, "fleetcast_gateway_disconnects_total", reason="token_expired") == 1
    finally:
        await running.stop()
