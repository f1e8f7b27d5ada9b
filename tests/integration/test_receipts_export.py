"""The delivery record exported from real Kafka, per incident and per time range, and verified.

Two gateway processes and the consumer carry two alerts to units on both
gateways; the units answer; then ``python -m fleetcast.consumer.exporting``
(the tool as an operator runs it) reads ``fleet.receipts`` and writes the
chained records. The export of an incident holds exactly its alert, with
who it was written to on which gateway, who had it, saw it and acknowledged
it; a time range holds the alerts first seen in it; exporting again gives
the same bytes; ``--verify`` accepts the file and finds an edited or a
dropped record.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from fleetcast.protocol import audit, receipts
from tests.harness.gateway import Client
from tests.harness.kafka import KafkaTopics, produce_events
from tests.integration.receipts_support import (
    alert,
    answer,
    connect,
    read_topic,
    two_gateways,
    warm_up,
)

pytestmark = pytest.mark.integration


async def run_export(topics: KafkaTopics, *args: str) -> tuple[int, dict[str, Any]]:
    """The exporter as a process: its exit status and its summary line (stderr)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCAST_")}
    env |= {
        "FLEETCAST_KAFKA_BOOTSTRAP_SERVERS": topics.bootstrap,
        "FLEETCAST_KAFKA_RECEIPTS_TOPIC": topics.for_type(receipts.RECEIPT_TYPE),
        "FLEETCAST_EXPORT_TIMEOUT_S": "60",
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "fleetcast.consumer.exporting", *args,
        env=env,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), 90)
    lines = err.decode().strip().splitlines()
    assert lines, "the exporter said nothing"
    assert proc.returncode is not None
    return proc.returncode, orjson.loads(lines[-1])


def links(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


async def test_export_per_incident_and_time_range_is_chained_and_verified(
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
    tmp_path: Path,
    clients: Callable[..., Client],
) -> None:
    async with two_gateways(kafka_topics, redis_url, tmp_path) as (gw0, gw1):
        sender = await connect(clients, gw0.url, "disp-1", "org-a", "dispatcher")
        unit_a = await connect(clients, gw0.url, "unit-a", "org-a", "field_unit")
        unit_b = await connect(clients, gw1.url, "unit-b", "org-a", "field_unit")
        everyone = [(sender, "org-a"), (unit_a, "org-a"), (unit_b, "org-a")]
        await warm_up(kafka_producer, kafka_topics, everyone)
        started = datetime.now(UTC)
        first = alert("org-a", sent_by="disp-1", incident_id="inc-9", severity="critical")
        second = alert("org-a", sent_by="disp-1", incident_id="inc-3")
        await produce_events(kafka_producer, kafka_topics, [first, second])
        for unit in (unit_a, unit_b):
            await unit.wait_for("alert_created", count=2)
        for kind in ("delivered", "displayed"):
            assert (await answer(unit_a, first["event_id"], kind))["ok"]
        assert (await answer(unit_a, first["event_id"], "acknowledged", response="en route"))["ok"]
        assert (await answer(unit_b, first["event_id"], "delivered"))["ok"]
        assert (await answer(unit_b, second["event_id"], "delivered"))["ok"]

        def complete(docs: list[dict[str, Any]]) -> bool:
            sent_by = {
                (d["data"]["delivery_id"], d["data"]["gateway"])
                for d in docs
                if d["data"]["kind"] == receipts.SENT
            }
            ours = {(first["event_id"], g) for g in ("gw-0", "gw-1")}
            return ours <= sent_by and any(d["data"]["kind"] == "acknowledged" for d in docs)

        topic = kafka_topics.for_type(receipts.RECEIPT_TYPE)
        await read_topic(kafka_topics.bootstrap, topic, complete)
    ended = datetime.now(UTC) + timedelta(seconds=1)

    incident = tmp_path / "inc-9.jsonl"
    status, summary = await run_export(kafka_topics, "--incident", "inc-9", "--out", str(incident))
    assert (status, summary["records"]) == (0, 1), summary
    [link] = links(incident)
    assert summary["heads"] == {"org-a": link["hash"]}
    assert link["prev"] == audit.GENESIS
    record = link["record"]
    assert record["delivery_id"] == first["event_id"]
    assert (record["sender"], record["incident_id"]) == ("disp-1", "inc-9")
    assert record["counts"] == {"sent": 3, "delivered": 2, "displayed": 1, "acknowledged": 1}
    assert record["acknowledged_by"] == ["unit-a"]
    by = {e["recipient"]: e for e in record["recipients"]}
    assert {who: e["gateway"] for who, e in by.items()} == {
        "disp-1": "gw-0", "unit-a": "gw-0", "unit-b": "gw-1",
    }  # fmt: skip
    assert by["unit-a"]["response"] == "en route"
    assert by["unit-a"]["roles"] == ["field_unit"]
    assert set(by["unit-a"]) >= {"sent_at", "delivered_at", "displayed_at", "acknowledged_at"}
    assert "displayed_at" not in by["unit-b"]

    again = tmp_path / "again.jsonl"
    assert (await run_export(kafka_topics, "--incident", "inc-9", "--out", str(again)))[0] == 0
    assert again.read_bytes() == incident.read_bytes()  # the same receipts, the same hashes

    window = tmp_path / "window.jsonl"
    since, until = started.isoformat(), ended.isoformat()
    args = ("--org", "org-a", "--since", since, "--until", until, "--out", str(window))
    assert (await run_export(kafka_topics, *args))[0] == 0
    chained = links(window)
    assert sorted(lk["record"]["delivery_id"] for lk in chained) == sorted(
        [first["event_id"], second["event_id"]]
    )  # not the warm-up alert, first seen before the range
    assert [lk["prev"] for lk in chained] == [audit.GENESIS, chained[0]["hash"]]
    later = ("--since", ended.isoformat(), "--out", str(tmp_path / "none.jsonl"))
    assert (await run_export(kafka_topics, *later))[1]["records"] == 0

    assert await run_export(kafka_topics, "--verify", str(window)) == (
        0, {"verified": True, "broken_line": None, "heads": {"org-a": chained[1]["hash"]}},
    )  # fmt: skip
    edited = [dict(lk) for lk in chained]
    edited[1]["record"] = {**edited[1]["record"], "acknowledged_by": ["unit-b"]}
    forged = tmp_path / "forged.jsonl"
    forged.write_bytes(b"".join(orjson.dumps(lk) + b"\n" for lk in edited))
    status, verdict = await run_export(kafka_topics, "--verify", str(forged))
    assert (status, verdict["broken_line"]) == (1, 2)
    dropped = tmp_path / "dropped.jsonl"
    dropped.write_bytes(window.read_bytes().splitlines(keepends=True)[1])
    status, verdict = await run_export(kafka_topics, "--verify", str(dropped))
    assert (status, verdict["broken_line"]) == (1, 1)
