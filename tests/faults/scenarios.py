"""The faults of issue 14, each run the same way against a fresh :class:`FaultStack`.

A run: start the stack (two gateways, one consumer, counting clients in every
room primed), steady traffic for ``before_s``, the fault, traffic until every
client received a fresh event (bounded) and for at least ``after_s`` after the
fault, then the traffic stops and the clients are given time to receive what is
still on its way. :func:`run` returns the counts (tests.harness.counting) and
what the processes did (their /ready, their counters). The suite
(tests/faults/test_faults.py) runs each for ~10 s of traffic; the report
(``python -m tests.faults.report``) for 60 s and writes docs/reliability.md.
"""

from __future__ import annotations

import asyncio
import signal
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final

import orjson

from fleetcast.devtools import kafka
from tests.harness import counting
from tests.harness.stack import FaultStack, StackOptions

#: The size of the record that wedged the consumer in issue 14: under the
#: broker's 1 MiB default, but its dead-letter copy with headers is not.
SIZE_LIMIT_BYTES: Final = 1_048_450
#: Counters worth naming in the report, by the part of their name.
NOTABLE: Final = ("reconnects", "canary_failures", "recoveries", "resync", "dead_lettered",
                  "errors", "disconnects", "stall", "dlq")  # fmt: skip


@dataclass(frozen=True, slots=True)
class Timing:
    before_s: float
    after_s: float
    recover_within_s: float
    quiet_s: float
    settle_within_s: float


#: ``make test``: about 10 s of traffic per fault.
SUITE: Final = Timing(before_s=4, after_s=6, recover_within_s=20, quiet_s=4, settle_within_s=30)
#: The report: 60 s of traffic per fault (more if recovery takes longer).
REPORT: Final = Timing(before_s=20, after_s=40, recover_within_s=60, quiet_s=8, settle_within_s=90)


Inject = Callable[[FaultStack], Awaitable[str]]


@dataclass(frozen=True, slots=True)
class Fault:
    id: str
    title: str
    inject: Inject
    options: StackOptions = field(default_factory=StackOptions)


def oversized_envelope(org: str) -> bytes:
    """A well-formed envelope of exactly SIZE_LIMIT_BYTES (over the consumer's event limit)."""
    doc = {"event_id": f"big-{uuid.uuid4().hex}", "event_type": "incident_updated",
           "organization_id": org, "occurred_at": "2026-11-25T18:00:00Z",
           "data": {"incident_id": "inc-1", "note": ""}}  # fmt: skip
    pad = SIZE_LIMIT_BYTES - len(orjson.dumps(doc))
    doc["data"] = {"incident_id": "inc-1", "note": "x" * pad}
    value = orjson.dumps(doc)
    assert len(value) == SIZE_LIMIT_BYTES
    return value


async def _not_json(stack: FaultStack) -> str:
    await stack.send_raw("alert_created", b'{"event_id": "broken', stack.model.orgs[0])
    return "one record that is not JSON sent to the alerts topic; the DLQ topic does not exist"


async def _size_limit(stack: FaultStack) -> str:
    org = stack.model.orgs[0]
    await stack.send_raw("incident_updated", oversized_envelope(org), org)
    return f"one record of {SIZE_LIMIT_BYTES:,} bytes sent to the incidents topic"


FAULTS: Final = (
    Fault("pubsub-kill", "`redis-cli CLIENT KILL TYPE pubsub` (both gateways' pub/sub)",
          lambda s: s.kill_pubsub()),
    Fault("redis-restart", "Redis restarted empty (down 1 s, no persistence)",
          lambda s: s.restart_redis(1.0)),
    Fault("kafka-pause", "Kafka broker paused 5 s (SIGSTOP, then SIGCONT)",
          lambda s: s.pause_kafka(5.0)),
    Fault("kafka-restart", "Kafka broker restarted (SIGTERM, start again)",
          lambda s: s.restart_kafka()),
    Fault("consumer-kill", "consumer `kill -9`, a new consumer started",
          lambda s: s.replace_consumer(signal.SIGKILL)),
    Fault("consumer-term", "consumer SIGTERM, a new consumer started",
          lambda s: s.replace_consumer(signal.SIGTERM)),
    Fault("gateway-term", "gateway SIGTERM: its clients move to the other gateway",
          lambda s: s.signal_gateway(0, signal.SIGTERM)),
    Fault("gateway-kill", "gateway SIGKILL: its clients move to the other gateway",
          lambda s: s.signal_gateway(0, signal.SIGKILL)),
    Fault("dlq-missing", "dead-letter topic missing, one record not JSON among good events",
          _not_json, StackOptions(dlq_missing=True)),
    Fault("size-limit", f"a record of {SIZE_LIMIT_BYTES:,} bytes among good events",
          _size_limit),
)  # fmt: skip
BY_ID: Final = {fault.id: fault for fault in FAULTS}


@dataclass(frozen=True, slots=True)
class Outcome:
    fault: str
    did: str
    #: How long the fault action took (a pause, a restart); 0 for a kill.
    fault_s: float
    #: Seconds of steady traffic, and events Kafka acknowledged / refused.
    traffic_s: float
    produced: int
    failed_sends: int
    rate: float
    totals: counting.Totals
    #: Seconds each process answered /ready with anything but 200 from the fault on.
    not_ready_s: dict[str, float]
    #: Notable counters that moved from the fault on: "process: metric{labels}" -> increase.
    counters: dict[str, float]
    #: Processes that were not running at the end (a killed gateway, a replaced consumer).
    exited: list[str]


async def run(fault: Fault, broker: kafka.KafkaBroker, log_dir: Path, timing: Timing) -> Outcome:
    """One fault against a fresh stack; see the module docstring."""
    name = f"faults-{fault.id}-{uuid.uuid4().hex[:6]}"
    async with FaultStack(broker, log_dir, name, fault.options) as stack:
        assert stack.producer is not None
        assert stack.watch is not None
        started = time.monotonic()
        await asyncio.sleep(timing.before_s)
        counters_before = await stack.metrics()
        fault_start = time.monotonic()
        did = await fault.inject(stack)
        fault_end = time.monotonic()
        await stack.until_every_client_has_fresh(fault_end, timing.recover_within_s)
        await asyncio.sleep(max(0.0, timing.after_s - (time.monotonic() - fault_end)))
        traffic_s = time.monotonic() - started
        await stack.stop_traffic()
        await stack.settle(timing.quiet_s, timing.settle_within_s)
        ledger = stack.producer.ledger
        return Outcome(
            fault=fault.id,
            did=did,
            fault_s=round(fault_end - fault_start, 2),
            traffic_s=round(traffic_s, 1),
            produced=len(ledger.confirmed),
            failed_sends=len(ledger.failed),
            rate=fault.options.rate,
            totals=counting.totals(ledger.confirmed, stack.records, fault_end),
            not_ready_s=stack.watch.not_ready_s(fault_start),
            counters=notable(counters_before, await stack.metrics()),
            exited=stack.exited(),
        )


Metrics = Mapping[str, Mapping[str, float]]


def notable(before: Metrics, after: Metrics) -> dict[str, float]:
    """Increase of each notable counter (by its name, not its labels) between two scrapes."""
    moved = {}
    for process, samples in after.items():
        for sample, value in samples.items():
            name = sample.split("{")[0]
            if not name.endswith("_total") or not any(word in name for word in NOTABLE):
                continue
            increase = value - before.get(process, {}).get(sample, 0.0)
            if increase:
                moved[f"{process}: {sample}"] = increase
    return moved


def summary(outcome: Outcome) -> str:
    """One line for a test's output."""
    t = outcome.totals
    recovery = "never" if t.recovery_s is None else f"{t.recovery_s:.2f} s"
    return (
        f"{outcome.fault}: {outcome.did}; {outcome.produced} events in {outcome.traffic_s} s, "
        f"{t.clients} clients, expected {t.expected}, delivered {t.delivered}, "
        f"announced {t.announced}, superseded {t.superseded}, "
        f"lost {t.lost} ({t.clients_with_loss} clients), "
        f"duplicates {t.duplicates} ({t.cross_room} cross-room), misrouted {t.misrouted}, "
        f"recovery {recovery}, "
        f"reconnects {t.reconnects} ({t.connect_refusals} handshakes refused), "
        f"resyncs {t.resyncs}, not ready {outcome.not_ready_s}, errors {t.errors}, "
        f"counters {outcome.counters}"
    )
