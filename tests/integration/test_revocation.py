"""Revocation now, on every gateway: through the admin API or the Kafka control topic.

Real Kafka, the consumer, two gateways on one Redis. A revoke written once
(to one gateway's admin API, or straight to the control topic as another
service would) closes the user's connections on both gateways within a
second, and their token is refused from then on; a withdraw takes a room
away from the people it names.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import jwt
import orjson
import pytest
from aiokafka import AIOKafkaProducer

from fleetcast.protocol import control
from tests.harness.gateway import (
    SECRET,
    Client,
    RunningGateway,
    gateway_settings,
    make_token,
    start_gateway,
)
from tests.harness.kafka import KafkaTopics, consumer_settings, running_consumer

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]
ADMIN = "admin-token-of-the-operators-tooling-0123456789"
#: Revocation is "within a second"; the test allows for a loaded machine.
WITHIN_S = 5.0


@pytest.fixture
async def gateways(
    redis_url: str, kafka_topics: KafkaTopics
) -> AsyncIterator[list[RunningGateway]]:
    settings = consumer_settings(kafka_topics, redis_url)
    async with running_consumer(settings):
        running = [
            await start_gateway(
                gateway_settings(
                    redis_url,
                    admin_token=ADMIN,
                    kafka_bootstrap_servers=kafka_topics.bootstrap,
                    kafka_control_topic=kafka_topics.control,
                )
            )
            for _ in range(2)
        ]
        try:
            yield running
        finally:
            for gateway in running:
                await gateway.stop()


async def admin(url: str, path: str, body: Any, token: str = ADMIN) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"}
    async with (
        aiohttp.ClientSession() as http,
        http.post(f"{url}{path}", data=orjson.dumps(body), headers=headers) as response,
    ):
        return response.status, await response.json()


def issued_now(user: str) -> str:
    now = time.time()
    claims = {"sub": user, "org_id": "o1", "roles": ["dispatcher"]}
    return jwt.encode({**claims, "exp": int(now + 600), "iat": now + 0.5}, SECRET, "HS256")


async def test_a_revoke_cuts_the_user_off_on_every_gateway_and_refuses_its_token(
    gateways: list[RunningGateway], clients: ClientFactory
) -> None:
    token = make_token("u1", ttl=600)
    ones = [clients(gateway.url) for gateway in gateways]
    for client in ones:
        assert await client.connect(token)
    bystander = clients(gateways[0].url)
    assert await bystander.connect(make_token("u2", ttl=600))
    status, body = await admin(
        gateways[0].url, "/admin/revoke", {"org": "o1", "user": "u1", "reason": "stolen"}
    )
    assert (status, body["ok"]) == (202, True)
    sent = time.monotonic()
    for client in ones:
        [notice] = await client.wait_for("disconnect_reason", 1, WITHIN_S)
        assert notice["code"] == "revoked"
        assert notice["reconnect"] is False
    print(f"\nrevoked on both gateways {time.monotonic() - sent:.3f} s after the API answered")
    assert bystander.sio.connected
    for gateway in gateways:
        again = clients(gateway.url)
        assert not await again.connect(token)
        assert again.connect_error["code"] == "revoked"
    await asyncio.sleep(1.0)  # a token issued after the revocation is fine
    fresh = clients(gateways[1].url)
    assert await fresh.connect(issued_now("u1"))


async def test_a_withdraw_from_the_control_topic_takes_the_room_away(
    gateways: list[RunningGateway], clients: ClientFactory, kafka_topics: KafkaTopics
) -> None:
    unit = clients(gateways[1].url)
    assert await unit.connect(make_token("u1", ttl=600))
    assert (await unit.call("subscribe", {"room": "incident:i1"}))["ok"]
    other = clients(gateways[0].url)
    assert await other.connect(make_token("u2", ttl=600))
    assert (await other.call("subscribe", {"room": "incident:i1"}))["ok"]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_topics.bootstrap, acks="all")
    await producer.start()
    try:
        message = {"v": 1, "action": "withdraw", "org": "o1", "room": "incident:i1",
                   "user": "u1", "reason": "taken off the incident"}  # fmt: skip
        await producer.send_and_wait(kafka_topics.control, orjson.dumps(message), key=b"o1")
    finally:
        await producer.stop()
    [changed] = await unit.wait_for("access_changed", 1, WITHIN_S)
    assert changed == {"rooms": ["incident:i1"], "reason": "taken off the incident"}
    again = await unit.call("subscribe", {"room": "incident:i1"})
    assert again["error"]["code"] == "forbidden"
    assert other.received("access_changed") == []
    assert unit.sio.connected


async def test_the_admin_api_wants_its_token_and_says_what_is_wrong(
    gateways: list[RunningGateway], redis_url: str
) -> None:
    url = gateways[0].url
    wrong = "not-the-admin-token"
    assert (await admin(url, "/admin/revoke", {"org": "o1", "user": "u1"}, wrong))[0] == 401
    status, body = await admin(url, "/admin/revoke", {"org": "o1"})
    assert status == 400
    assert "names a user" in body["error"]
    status, body = await admin(url, "/admin/withdraw", {"org": "o1", "room": "nowhere:x"})
    assert status == 400
    no_kafka = await start_gateway(gateway_settings(redis_url, admin_token=ADMIN))
    try:
        assert (await admin(no_kafka.url, "/admin/revoke", {"org": "o1", "user": "u"}))[0] == 503
    finally:
        await no_kafka.stop()
    no_admin = await start_gateway(gateway_settings(redis_url))
    try:
        status, _ = await admin_raw(no_admin.url, "/admin/revoke")
        assert status == 404  # no token, no API
    finally:
        await no_admin.stop()


async def admin_raw(url: str, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.post(f"{url}{path}") as response:
        return response.status, await response.text()


def test_the_control_topic_default_matches_on_both_sides() -> None:
    from fleetcast.consumer.settings import Settings as ConsumerSettings
    from fleetcast.gateway.settings import Settings as GatewaySettings

    gateway = GatewaySettings(jwt_secret=SECRET)
    assert ConsumerSettings().kafka_control_topic == gateway.kafka_control_topic
    assert gateway.kafka_control_topic == control.DEFAULT_TOPIC


async def test_a_task_moved_to_another_unit_takes_its_incident_room_from_the_first(
    gateways: list[RunningGateway], clients: ClientFactory, kafka_topics: KafkaTopics
) -> None:
    """The default access rule: task_assigned with previous_user_id withdraws the incident."""
    first = clients(gateways[0].url)
    assert await first.connect(make_token("u1", ttl=600))
    assert (await first.call("subscribe", {"room": "incident:i9"}))["ok"]
    producer = AIOKafkaProducer(bootstrap_servers=kafka_topics.bootstrap, acks="all")
    await producer.start()
    try:
        event = {"event_id": "moved-1", "event_type": "task_assigned", "organization_id": "o1",
                 "occurred_at": "2026-11-25T18:00:00Z",
                 "data": {"task_id": "t1", "incident_id": "i9", "user_id": "u2",
                          "previous_user_id": "u1"}}  # fmt: skip
        topic = kafka_topics.for_type("task_assigned")
        await producer.send_and_wait(topic, orjson.dumps(event), key=b"o1")
    finally:
        await producer.stop()
    [changed] = await first.wait_for("access_changed", 1, WITHIN_S)
    assert changed == {"rooms": ["incident:i9"], "reason": "task_assigned"}
    assert (await first.call("subscribe", {"room": "incident:i9"}))["error"]["code"] == "forbidden"
