"""Pytest fixtures for a real redis-server (see fleetcast.devtools.redis).

- ``redis_server``: one server for the whole session (never stop it in a test).
- ``redis_url``: the shared server's URL, emptied (FLUSHALL) before the test.
- ``own_redis``: a private server for one test, which it may stop/restart freely.

A missing redis-server fails the test (``make test`` installs it first).
"""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from fleetcast.devtools.redis import RedisServer


def flushall(port: int) -> None:
    """Empty every db over raw RESP (no client library, no event loop needed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
        sock.sendall(b"FLUSHALL\r\n")
        reply = sock.recv(64)
    if not reply.startswith(b"+OK"):
        raise RuntimeError(f"FLUSHALL failed: {reply!r}")


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    if not redis_server.running:  # a test stopped the shared server by mistake
        redis_server.start()
    assert redis_server.port is not None
    flushall(redis_server.port)
    return redis_server.url


@pytest.fixture
def own_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.cleanup()
