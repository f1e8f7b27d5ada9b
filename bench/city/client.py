"""Dispatch clients of the city scenarios: consoles on the fleet map, field units on their asset.

One asyncio protocol per connection, no task. A client subscribes to its
rooms, then counts what arrives: frames, positions (single or inside
``asset_positions`` batches and snapshots), and the end-to-end latency of
every priority event from the probe the benchmark stamps into ``data``
(``bt`` = ``time.monotonic_ns()`` at produce time). Batches are not parsed
as JSON: a console receives one of ~100 KB a second, and the load generator
shares its core with Kafka and the consumer; positions are counted by their
probes.
"""

from __future__ import annotations

import asyncio
import re
import time
from array import array
from dataclasses import dataclass, field
from typing import Final, cast

from bench.loadgen import codec

QUERY: Final = "EIO=4&transport=websocket"
PROBE_TIME: Final = re.compile(rb'"bt":(\d+)')
BATCH_PREFIX: Final = b'42["asset_positions"'
SNAPSHOT_PREFIX: Final = b'42["fleet_snapshot"'
POSITION_PREFIX: Final = b'42["asset_position_updated"'
PRIORITY_PREFIXES: Final = (b'42["alert_', b'42["incident_', b'42["asset_status')


@dataclass(slots=True)
class Tally:
    """What one group of clients (consoles, field units) received during a phase."""

    frames: int = 0
    positions: int = 0
    batches: int = 0
    snapshots: int = 0
    priority: int = 0
    alert_latency_us: array[float] = field(default_factory=lambda: array("d"))
    #: When each alert of ``alert_latency_us`` was produced (its probe, monotonic ns).
    alert_sent_ns: array[int] = field(default_factory=lambda: array("q"))
    priority_latency_us: array[float] = field(default_factory=lambda: array("d"))
    priority_sent_ns: array[int] = field(default_factory=lambda: array("q"))
    #: Produce -> receive of positions inside batches (sampled clients only).
    position_age_us: array[float] = field(default_factory=lambda: array("d"))
    closed: int = 0


class MapClient(asyncio.Protocol):
    """Connect, subscribe to ``rooms``, then tally every frame into ``tally``."""

    def __init__(self, token: str, rooms: tuple[str, ...], tally: Tally, *, sample: bool) -> None:
        self.token = token
        self.rooms = rooms
        self.tally = tally
        self.sample = sample  # read every position's age (costly: a few clients only)
        self.ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.counting = False
        self._transport: asyncio.Transport | None = None
        self._buf = b""
        self._upgraded = False
        self._acks = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        host, port = self._transport.get_extra_info("peername")[:2]
        self._transport.write(codec.upgrade_request(host, port, "/ws/", QUERY))

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError("closed before subscribed"))
        elif self.counting:
            self.tally.closed += 1

    def data_received(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        if not self._upgraded:
            _head, sep, rest = buf.partition(b"\r\n\r\n")
            if not sep:
                self._buf = buf
                return
            self._upgraded, buf = True, rest
        frames, self._buf = codec.split_frames(buf)
        now = time.monotonic_ns()
        for opcode, _fin, payload in frames:
            if opcode == codec.OP_TEXT and payload:
                self._message(payload, now)

    def _message(self, payload: bytes, now: int) -> None:
        kind = payload[0]
        if kind == codec.EIO_MESSAGE:
            if payload[1:3] == b"2[":
                if self.counting:
                    self._count(payload, now)
                return
            self._control(codec.parse_sio(payload[1:]))
        elif kind == codec.EIO_PING:
            self._send(b"3")
        elif kind == codec.EIO_OPEN:
            self._send(codec.sio_connect({"token": self.token}))

    def _control(self, packet: codec.SioPacket) -> None:
        if packet.kind == 0:
            for ack_id, room in enumerate(self.rooms):
                self._send(codec.sio_event("subscribe", {"room": room}, ack_id))
            if not self.rooms:
                self.ready.set_result(None)
        elif packet.kind == 3:
            self._acks += 1
            if self._acks == len(self.rooms) and not self.ready.done():
                self.ready.set_result(None)
        elif packet.kind == 4 and not self.ready.done():
            self.ready.set_exception(ConnectionError(f"refused: {packet.data}"))

    def _count(self, text: bytes, now: int) -> None:
        count_frame(self.tally, text, now, sample=self.sample)

    def _send(self, payload: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(codec.client_frame(payload))

    def close(self) -> None:
        if self._transport is not None:
            self._transport.abort()


def count_frame(tally: Tally, text: bytes, now: int, *, sample: bool) -> None:
    """Tally one event frame (``42[...]``) received at ``now``; ``sample``: positions' ages too."""
    tally.frames += 1
    if text.startswith(BATCH_PREFIX) or text.startswith(SNAPSHOT_PREFIX):
        stamps = PROBE_TIME.findall(text)
        tally.positions += len(stamps)
        if text.startswith(BATCH_PREFIX):
            tally.batches += 1
        else:
            tally.snapshots += 1
        if sample:
            tally.position_age_us.extend((now - int(t)) / 1000 for t in stamps)
    elif text.startswith(POSITION_PREFIX):
        tally.positions += 1
    elif text.startswith(PRIORITY_PREFIXES):
        tally.priority += 1
        found = PROBE_TIME.search(text)
        if found is not None:
            sent = int(found[1])
            latency = (now - sent) / 1000
            tally.priority_latency_us.append(latency)
            tally.priority_sent_ns.append(sent)
            if text.startswith(b'42["alert_'):
                tally.alert_latency_us.append(latency)
                tally.alert_sent_ns.append(sent)


async def connect_all(
    clients: list[MapClient], port: int, *, concurrency: int = 100, within_s: float = 300.0
) -> int:
    """Connect and subscribe every client (bounded concurrency); returns how many made it."""
    loop = asyncio.get_running_loop()
    gate = asyncio.Semaphore(concurrency)

    async def one(client: MapClient) -> bool:
        async with gate:
            try:
                async with asyncio.timeout(30.0):
                    await loop.create_connection(lambda: client, "127.0.0.1", port)
                    await client.ready
            except (OSError, TimeoutError):
                client.close()
                return False
            return True

    async with asyncio.timeout(within_s):
        done = await asyncio.gather(*(one(c) for c in clients))
    return sum(done)
