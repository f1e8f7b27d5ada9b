"""The gateway's Kafka producer: control messages and receipts, each keyed by org.

Started on first use (a gateway serves clients whether or not Kafka is up)
and stopped with the app. A send either reaches the broker (acks=all) or
raises: the admin API then answers 503, and nothing is half done.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

import structlog
from aiokafka import AIOKafkaProducer

from fleetcast.protocol import control

log = structlog.stdlib.get_logger(__name__)

#: Longest a send (start included) may take before the caller hears it failed.
SEND_TIMEOUT_S: Final = 5.0
#: Bytes of records per partition per produce request. Receipts come in bursts
#: (every unit of an org answers an alert at once: ~3,400 of ~330 B from a city's
#: 1,200 clients) and all go to the org's one partition; aiokafka sends a
#: partition's batches one request at a time, so its 16 KiB default (~50
#: receipts per round trip) made them queue past SEND_TIMEOUT_S (bench receipts).
MAX_BATCH_BYTES: Final = 512 * 1024  # half of Kafka's default request and record limits


class ControlProducer:
    """Sends control messages to Kafka (the consumer records and fans them out)."""

    def __init__(self, options: dict[str, Any], topic: str) -> None:
        self._options = options
        self._topic = topic
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def send(self, message: control.Control) -> None:
        async with asyncio.timeout(SEND_TIMEOUT_S):
            producer = await self._started()
            await producer.send_and_wait(
                self._topic, control.encode(message), key=message.org.encode()
            )

    async def send_record(self, topic: str, org: str, value: bytes) -> None:
        """One record (a receipt envelope) to ``topic``, keyed by org so it stays in order."""
        async with asyncio.timeout(SEND_TIMEOUT_S):
            producer = await self._started()
            await producer.send_and_wait(topic, value, key=org.encode())

    async def _started(self) -> AIOKafkaProducer:
        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(
                    **self._options, acks="all", max_batch_size=MAX_BATCH_BYTES
                )
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                async with asyncio.timeout(SEND_TIMEOUT_S):
                    await producer.stop()
            except TimeoutError:
                log.warning("kafka producer did not stop in time")
