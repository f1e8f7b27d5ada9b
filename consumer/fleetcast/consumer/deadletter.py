"""The dead-letter topic: where a record that cannot be delivered goes.

The record is copied as is (key and value), with headers saying why and where
it came from, so an operator can inspect it and replay it after a fix. The
reason header is one word of :data:`fleetcast.protocol.events.REASONS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Final, Protocol

from aiokafka import AIOKafkaProducer

from fleetcast.consumer import processing

HEADER_REASON: Final = "fleetcast-reason"
HEADER_ERROR: Final = "fleetcast-error"
HEADER_TOPIC: Final = "fleetcast-topic"
HEADER_PARTITION: Final = "fleetcast-partition"
HEADER_OFFSET: Final = "fleetcast-offset"
#: The error text is for humans; bound it so a header never dwarfs the record.
MAX_ERROR_CHARS: Final = 500


def headers(letter: processing.DeadLetter) -> list[tuple[str, bytes]]:
    return [
        (HEADER_REASON, letter.reason.encode()),
        (HEADER_ERROR, letter.message[:MAX_ERROR_CHARS].encode()),
        (HEADER_TOPIC, letter.topic.encode()),
        (HEADER_PARTITION, str(letter.partition).encode()),
        (HEADER_OFFSET, str(letter.offset).encode()),
    ]


class DeadLetterSink(Protocol):
    """Accepts dead letters; returns once all are stored, raises otherwise."""

    async def send(self, letters: Sequence[processing.DeadLetter]) -> None: ...


class KafkaDeadLetters:
    """DeadLetterSink writing to a Kafka topic through a started producer."""

    def __init__(self, producer: AIOKafkaProducer, topic: str) -> None:
        self._producer = producer
        self._topic = topic

    async def send(self, letters: Sequence[processing.DeadLetter]) -> None:
        if not letters:
            return
        futures = [
            await self._producer.send(
                self._topic, letter.value, key=letter.key, headers=headers(letter)
            )
            for letter in letters
        ]
        await asyncio.gather(*futures)
