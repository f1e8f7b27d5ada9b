"""Helpers of the consumer's fault tests: events, frozen processes, /ready."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any, TypeVar

import aiohttp
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from fleetcast.devtools.redis import RedisServer
from tests.harness.kafka import KafkaTopics

T = TypeVar("T")


def alerts(prefix: str, count: int, org: str = "org-a") -> list[dict[str, Any]]:
    """``count`` alert_created envelopes of ``org`` with ids ``{prefix}-{n}``."""
    return [
        {
            "event_id": f"{prefix}-{n}",
            "event_type": "alert_created",
            "organization_id": org,
            "occurred_at": "2026-11-25T18:00:00Z",
            "data": {"n": n},
        }
        for n in range(count)
    ]


def redis_pid(server: RedisServer) -> int:
    """The server's process id, as it reports it (INFO server)."""
    assert server.port is not None
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"INFO server\r\n")
        reply = b""
        while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
            reply += sock.recv(65536)
    line = next(item for item in reply.split(b"\r\n") if item.startswith(b"process_id:"))
    return int(line.split(b":")[1])


@contextlib.contextmanager
def frozen(pid: int) -> Iterator[None]:
    """The process stopped with SIGSTOP until the block ends, then SIGCONT (always)."""
    os.kill(pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(pid, signal.SIGCONT)


async def ready(port: int) -> tuple[int, dict[str, Any]]:
    """The consumer's /ready: status and body."""
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/ready") as response,
    ):
        return response.status, await response.json()


async def eventually(
    check: Callable[[], Awaitable[T | None]], timeout_s: float = 60.0, what: str = ""
) -> T:
    """Poll ``check`` every 50 ms until it returns something truthy; that value."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout_s:.0f}s: {what or check}")
        await asyncio.sleep(0.05)


async def committed(topics: KafkaTopics) -> dict[TopicPartition, int]:
    """The group's committed offsets (partitions with one)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=topics.bootstrap)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(topics.group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def read_topic(bootstrap: str, topic: str, count: int, timeout_s: float = 30.0) -> list[Any]:
    """At least ``count`` records of ``topic`` from its start (fewer if it has no more)."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        group_id=None,
        fetch_max_bytes=8 * 1024 * 1024,
        max_partition_fetch_bytes=8 * 1024 * 1024,
    )
    await consumer.start()
    records: list[Any] = []
    deadline = time.monotonic() + timeout_s
    try:
        while len(records) < count and time.monotonic() < deadline:
            polled = await consumer.getmany(timeout_ms=200)
            records += [r for batch in polled.values() for r in batch]
    finally:
        await consumer.stop()
    return records
