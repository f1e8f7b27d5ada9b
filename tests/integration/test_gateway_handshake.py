"""Handshake admission against a real gateway and real Socket.IO clients.

Every refusal code of DESIGN.md reaches the client as connect_error data
{code, message}; accepted connections get ``session`` first, in their org
and user rooms; the token is accepted from the auth payload, the
Authorization header and ?token=, over websocket and polling.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import socket
import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest

from bench.loadgen import codec
from tests.harness.gateway import (
    SECRET,
    Client,
    RunningGateway,
    gateway_settings,
    make_token,
    metric,
    scrape,
    start_gateway,
)

pytestmark = pytest.mark.integration

ClientFactory = Callable[..., Client]


def hs256_signed_with(key: bytes, claims: dict[str, Any]) -> str:
    """A JWT signed by hand (PyJWT itself refuses to use a PEM as an HMAC key)."""

    def part(doc: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=")

    signing_input = part({"alg": "HS256", "typ": "JWT"}) + b"." + part({**claims, "exp": 9e9})
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


async def refused(client: Client, token: str | None = None, **kwargs: Any) -> dict[str, Any]:
    assert not await client.connect(token, **kwargs)
    error = client.connect_error
    assert isinstance(error, dict), error
    assert set(error) >= {"code", "message"}
    assert error["data"]["code"] == error["code"]
    return error


async def test_accepted_client_gets_session_first(
    gateway: RunningGateway, clients: ClientFactory
) -> None:
    client = clients(gateway.url)
    assert await client.connect(make_token("alice", "org-1", ["viewer"]))
    [session] = await client.wait_for("session")
    assert client.events[0][0] == "session"
    assert session["user"] == "alice"
    assert session["org"] == "org-1"
    assert session["rooms"] == ["org", "user:alice"]
    assert session["gateway"] == gateway.gateway.settings.gateway_id


@pytest.mark.parametrize(
    ("token", "code"),
    [
        (None, "invalid_token"),
        ("", "invalid_token"),
        ("not-a-jwt", "invalid_token"),
        # tokens are minted when the test runs (a collected one can expire before)
        ({"secret": SECRET[::-1]}, "invalid_token"),
        ({"ttl": -60}, "token_expired"),
        ({"roles": []}, "forbidden"),
        ({"roles": ["janitor"]}, "forbidden"),
        ({"org": "bad:org"}, "invalid_token"),
        ({"sub": "ü"}, "invalid_token"),
        ({"roles": "dispatcher"}, "invalid_token"),
        ("x" * 10_000, "invalid_token"),
    ],
    ids=[
        "none", "empty", "garbage", "wrong-secret", "expired", "no-roles", "unknown-role",
        "org-with-colon", "unicode-sub", "roles-not-list", "too-long",
    ],
)  # fmt: skip
async def test_refusal_codes(
    gateway: RunningGateway, clients: ClientFactory, token: str | dict[str, Any] | None, code: str
) -> None:
    if isinstance(token, dict):
        token = make_token(**token)
    error = await refused(clients(gateway.url), token)
    assert error["code"] == code
    samples = await scrape(gateway.url)
    assert metric(samples, "fleetcast_gateway_connect_refusals_total", code=code) == 1


async def test_alg_none_is_refused(gateway: RunningGateway, clients: ClientFactory) -> None:
    payload = {"sub": "u1", "org_id": "o1", "roles": ["admin"], "exp": int(time.time()) + 60}
    unsigned = jwt.encode(payload, "", algorithm="none")
    error = await refused(clients(gateway.url), unsigned)
    assert error["code"] == "invalid_token"


async def test_missing_exp_is_refused(gateway: RunningGateway, clients: ClientFactory) -> None:
    token = jwt.encode({"sub": "u1", "org_id": "o1", "roles": ["admin"]}, SECRET, algorithm="HS256")
    assert (await refused(clients(gateway.url), token))["code"] == "invalid_token"


async def test_token_from_header_and_query(gateway: RunningGateway, clients: ClientFactory) -> None:
    by_header = clients(gateway.url)
    assert await by_header.connect(headers={"Authorization": f"Bearer {make_token('h')}"})
    by_query = clients(gateway.url)
    assert await by_query.connect(query=f"token={make_token('q')}")
    users = [(await c.wait_for("session"))[0]["user"] for c in (by_header, by_query)]
    assert users == ["h", "q"]


async def test_polling_transport(gateway: RunningGateway, clients: ClientFactory) -> None:
    client = clients(gateway.url)
    assert await client.connect(make_token("p"), transports=("polling",))
    assert (await client.wait_for("session"))[0]["user"] == "p"
    assert (await client.call("subscribe", {"room": "channel:c1"}))["ok"] is True


async def test_max_connections_and_per_user(redis_url: str, clients: ClientFactory) -> None:
    running = await start_gateway(
        gateway_settings(redis_url, max_connections=3, max_connections_per_user=2)
    )
    try:
        for _ in range(2):
            assert await clients(running.url).connect(make_token("same"))
        error = await refused(clients(running.url), make_token("same"))
        assert error["code"] == "server_full"
        assert "per user" in error["message"]
        assert await clients(running.url).connect(make_token("other"))
        error = await refused(clients(running.url), make_token("third"))
        assert error["code"] == "server_full"
    finally:
        await running.stop()


async def test_handshake_rate_limit(redis_url: str, clients: ClientFactory) -> None:
    running = await start_gateway(
        gateway_settings(redis_url, handshake_rate=0.5, handshake_burst=2)
    )
    try:
        assert await clients(running.url).connect(make_token("a"))
        assert await clients(running.url).connect(make_token("b"))
        error = await refused(clients(running.url), make_token("c"))
        assert error["code"] == "rate_limited"
        assert 0 < error["retry_after"] <= 2.0
        assert error["data"]["retry_after"] == error["retry_after"]
    finally:
        await running.stop()


async def test_rs256_and_es256_with_public_keys(redis_url: str, clients: ClientFactory) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa

    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = rsa_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    settings = gateway_settings(
        redis_url, jwt_algorithms=["RS256", "HS256"], jwt_public_key=pem.decode()
    )
    running = await start_gateway(settings)
    try:
        good = make_token("rs", secret=rsa_key, algorithm="RS256")  # type: ignore[arg-type]
        assert await clients(running.url).connect(good)
        # algorithm confusion: an HS256 token whose HMAC key is the public key PEM
        confused = hs256_signed_with(pem, {"sub": "x", "org_id": "o1", "roles": ["admin"]})
        assert (await refused(clients(running.url), confused))["code"] == "invalid_token"
        ec_key = ec.generate_private_key(ec.SECP256R1())
        foreign = make_token("es", secret=ec_key, algorithm="ES256")  # type: ignore[arg-type]
        assert (await refused(clients(running.url), foreign))["code"] == "invalid_token"
    finally:
        await running.stop()


async def test_clients_gone_before_their_upgrade_is_answered_cost_no_error_log(
    gateway: RunningGateway, clients: ClientFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """A storm's given-up attempts: request sent, socket closed, before the loop reads it.

    All of it happens before this test yields to the loop (the kernel completes
    the TCP handshake), so the gateway reads each request and its EOF at once
    and answers a transport that is already closing. aiohttp used to log each
    with a traceback (~1.5 ms of CPU apiece in a storm); now the session just ends.
    """
    caplog.set_level(logging.ERROR, logger="aiohttp.server")
    request = codec.upgrade_request("127.0.0.1", gateway.port, "/ws/", "EIO=4&transport=websocket")
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", gateway.port), timeout=2) as sock:
            sock.sendall(request)
            sock.shutdown(socket.SHUT_WR)
    await asyncio.sleep(0.5)
    assert [r.getMessage() for r in caplog.records if r.name == "aiohttp.server"] == []
    client = clients(gateway.url)
    assert await client.connect(make_token("after"))
    await client.wait_for("session")
