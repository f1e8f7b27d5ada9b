"""``python -m fleetcast.consumer.exporting``: the delivery record of receipted alerts, exported.

The audit trail a dispatch centre keeps for after-action reviews: per alert,
who it was written to, who had it, saw it and acknowledged it, when, and its
escalations (protocol/deliveries.py). Read from the durable receipts topic
(FLEETCAST_KAFKA_RECEIPTS_TOPIC, ``fleet.receipts``) up to its end as of the
start, folded, selected per incident, org or time range, and written as one
JSON line per record, each chained to the previous one of its org
(protocol/audit.py: ``{"record", "prev", "hash"}``). The same receipts give
the same file and the same hashes, so a kept head hash (printed on stderr)
or a second export shows whether a file was edited; ``--verify FILE`` checks
a file's chain and exits 1 at the first broken link.

Exit status: 0 done, 1 a broken chain, 2 bad arguments or settings, 3 Kafka
did not answer within FLEETCAST_EXPORT_TIMEOUT_S or has no such topic.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetcast.common import settings as common_settings
from fleetcast.common.kafka import KafkaSecurity
from fleetcast.protocol import audit, deliveries, receipts


class MissingTopic(LookupError):
    """The receipts topic is not on these brokers (a wrong name or cluster)."""


class ExportSettings(KafkaSecurity, BaseSettings):
    """Where the receipts are (environment prefix ``FLEETCAST_``, as the gateway's)."""

    model_config = SettingsConfigDict(env_prefix="FLEETCAST_", extra="ignore", frozen=True)

    #: Brokers to bootstrap from, comma-separated host:port.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    #: The topic the gateways write receipts to (the gateway's same setting).
    kafka_receipts_topic: str = Field(default=receipts.DEFAULT_TOPIC, min_length=1)
    #: With --since, reading starts this many seconds before it (default 3600):
    #: an alert's first fact may come that long before its later receipts, and
    #: an alert first seen before --since must not pass for one seen after it.
    export_margin_s: float = Field(default=3600.0, ge=0)
    #: Seconds the whole read may take before the export gives up (exit 3).
    export_timeout_s: float = Field(default=120.0, gt=0)


def _time(text: str) -> datetime:
    parsed = deliveries.parse_time(text)
    if parsed is None:
        raise argparse.ArgumentTypeError(
            f"{text!r}: an RFC 3339 time with its zone, e.g. 2026-12-07T06:00:00Z"
        )
    return parsed


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m fleetcast.consumer.exporting", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--org", help="only this org's records")
    parser.add_argument("--incident", help="only the alerts of this incident (data.incident_id)")
    parser.add_argument("--since", type=_time, help="only alerts first seen at or after this time")
    parser.add_argument("--until", type=_time, help="only alerts first seen before this time")
    parser.add_argument("--out", type=Path, help="write here instead of stdout")
    parser.add_argument("--verify", type=Path, metavar="FILE", help="check the chain of an export")
    return parser.parse_args(argv)


async def read_receipts(
    settings: ExportSettings, since: datetime | None
) -> tuple[list[dict[str, Any]], int]:
    """Every receipt envelope up to the topic's end as of now (and how many were unreadable)."""
    consumer = AIOKafkaConsumer(
        **settings.kafka_options(settings.kafka_bootstrap_servers, "fleetcast-export"),
        group_id=None,
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        parts = await _partitions(consumer, settings.kafka_receipts_topic)
        ends = await consumer.end_offsets(parts)
        await _seek(consumer, parts, ends, since, settings.export_margin_s)
        return await _drain(consumer, parts, ends)
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of ``topic`` (without a group, a subscription is given them all)."""
    if topic not in await consumer.topics():
        raise MissingTopic(topic)
    consumer.subscribe([topic])
    while not consumer.assignment():  # noqa: ASYNC110 (no event for a group-less assignment)
        await asyncio.sleep(0.05)
    return sorted(consumer.assignment())


async def _seek(
    consumer: AIOKafkaConsumer,
    parts: list[TopicPartition],
    ends: Mapping[TopicPartition, int],
    since: datetime | None,
    margin_s: float,
) -> None:
    if since is None:
        await consumer.seek_to_beginning(*parts)
        return
    start_ms = int((since - timedelta(seconds=margin_s)).timestamp() * 1000)
    found = await consumer.offsets_for_times({tp: start_ms for tp in parts})
    for tp in parts:
        at = found.get(tp)
        consumer.seek(tp, at.offset if at is not None else ends[tp])


async def _drain(
    consumer: AIOKafkaConsumer, parts: list[TopicPartition], ends: Mapping[TopicPartition, int]
) -> tuple[list[dict[str, Any]], int]:
    docs: list[dict[str, Any]] = []
    skipped = 0
    while await _behind(consumer, parts, ends):
        polled = await consumer.getmany(*parts, timeout_ms=500)
        for tp, records in polled.items():
            for record in records:
                if record.offset >= ends[tp]:
                    continue  # written after the export started
                doc = _decode(record.value)
                if doc is None:
                    skipped += 1
                else:
                    docs.append(doc)
    return docs, skipped


async def _behind(
    consumer: AIOKafkaConsumer, parts: list[TopicPartition], ends: Mapping[TopicPartition, int]
) -> bool:
    for tp in parts:
        if await consumer.position(tp) < ends[tp]:
            return True
    return False


def _decode(value: bytes | None) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(value) if value else None
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def build(
    docs: Iterable[Mapping[str, Any]], args: argparse.Namespace
) -> tuple[list[audit.Link], int]:
    """The selected records, chained per org in the export's order (and the envelopes skipped)."""
    folder, skipped = deliveries.Folder(), 0
    for doc in docs:
        skipped += not folder.add(doc)
    chosen = deliveries.select(
        folder.records(), org=args.org, incident=args.incident, since=args.since, until=args.until
    )
    chains = audit.chain_per_org(chosen)
    return [link for org in sorted(chains) for link in chains[org]], skipped


def write(links: Iterable[audit.Link], out: IO[bytes]) -> dict[str, str]:
    """One JSON line per link; returns each org's head hash."""
    heads: dict[str, str] = {}
    for link in links:
        out.write(orjson.dumps(link.as_dict(), option=orjson.OPT_SORT_KEYS) + b"\n")
        heads[str(link.record.get("organization_id"))] = link.hash
    return heads


def verify_file(path: Path) -> tuple[int | None, dict[str, str]]:
    """The line number (1-based) of the first broken link in ``path`` or None; each org's head."""
    per_org: dict[str, list[tuple[int, audit.Link]]] = {}
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        link = _link(line)
        if link is None:  # not a link at all: the file is broken here
            return number, {}
        per_org.setdefault(str(link.record.get("organization_id")), []).append((number, link))
    broken = []
    for numbered in per_org.values():
        index = audit.verify([link for _, link in numbered])
        if index is not None:
            broken.append(numbered[index][0])
    heads = {org: numbered[-1][1].hash for org, numbered in per_org.items()}
    return (min(broken) if broken else None), heads


def _link(line: bytes) -> audit.Link | None:
    try:
        doc = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(doc, dict) or not isinstance(doc.get("record"), dict):
        return None
    return audit.Link(doc["record"], str(doc.get("prev")), str(doc.get("hash")))


async def export(settings: ExportSettings, args: argparse.Namespace) -> dict[str, Any]:
    async with asyncio.timeout(settings.export_timeout_s):
        docs, unreadable = await read_receipts(settings, args.since)
    links, skipped = build(docs, args)
    if args.out is None:
        heads = write(links, sys.stdout.buffer)
    else:
        with args.out.open("wb") as out:
            heads = write(links, out)
    return {
        "records": len(links),
        "receipts": len(docs),
        "skipped": unreadable + skipped,
        "heads": heads,
    }


def _report(doc: Mapping[str, Any]) -> None:
    sys.stderr.write(orjson.dumps(doc).decode() + "\n")


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    if args.verify is not None:
        line, heads = verify_file(args.verify)
        _report({"verified": line is None, "broken_line": line, "heads": heads})
        raise SystemExit(0 if line is None else 1)
    settings = common_settings.load(ExportSettings, "fleetcast-export")
    try:
        summary = asyncio.run(export(settings, args))
    except TimeoutError:
        _report({"error": "kafka_timeout", "timeout_s": settings.export_timeout_s})
        raise SystemExit(3) from None
    except MissingTopic as exc:
        _report({"error": "no_such_topic", "topic": str(exc)})
        raise SystemExit(3) from None
    _report(summary)


if __name__ == "__main__":
    main()
