"""CPU of tracing on the hot paths: consumer µs per event, gateway µs per delivery.

    .venv/bin/python -m bench.tracing_cost [--events 40000] [--clients 20] [--rounds 3]

Runs the real code of both hot paths in this process, with the real
OpenTelemetry SDK exporting over OTLP/HTTP to a real Jaeger (started here on
loopback, tools/observe/build.sh's binary), in three modes: tracing off (no
tracer: the shipped default), on with the default sampling (every priority
event, 1 % of positions) and on for every event (ratio 1).

- Consumer: the demo fleet's mix (10 orgs, 96-98 % positions) in polls of
  2,000 records, as the pipeline handles a poll: ``processing.prepare``, the
  tracer's ``begin`` (spans, traceparent), the Redis call's encoding, and the
  spans' ``end`` once "published". No Redis: what tracing adds is CPU in
  Python, and that is what is timed.
- Gateway: the same events as wire messages (one per org and poll, ``tp`` on
  the items the consumer traced), through ``Feed.on_message`` to
  ``Delivery``: K connections per org in its org and fleet rooms, frames
  handed to an outbox that only counts them (no sockets).

CPU is the process's (``time.process_time``: every thread, so the SDK's
export thread is counted); each mode's figure is the minimum over the rounds,
the modes interleaved so that they see the same machine.
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from fleetcast.common import tracing
from fleetcast.consumer import encoding, processing
from fleetcast.consumer import tracing as consumer_tracing
from fleetcast.devtools import demo
from fleetcast.devtools.jaeger import JaegerServer
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.feed import Feed
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.rooms.tracing import DeliveryTracer
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol import routing, wire

POLL = 2000
#: mode -> share of positions traced (None: tracing off).
MODES: dict[str, float | None] = {"off": None, "sampled": 0.01, "all": 1.0}


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Figures:
    mode: str
    consumer_us_per_event: float
    gateway_us_per_delivery: float
    traced_share: float
    deliveries: int


def polls(count: int) -> list[dict[tuple[str, int], list[Record]]]:
    fleet = demo.Fleet(orgs=10, units_per_org=250, seed=1)
    records = [
        Record("t", 0, n, None, orjson.dumps(doc))
        for n, doc in enumerate(itertools.islice(fleet, count))
    ]
    return [{("t", 0): records[i : i + POLL]} for i in range(0, len(records), POLL)]


def tracer_for(ratio: float | None, endpoint: str, service: str) -> tracing.Tracing | None:
    if ratio is None:
        return None
    env = {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
        "OTEL_TRACES_SAMPLER_ARG": str(ratio),
    }
    return tracing.setup(tracing.TracingSettings(**env), service, "bench")  # type: ignore[arg-type]


def cpu(work: Callable[[], int]) -> tuple[float, int]:
    """Process CPU seconds of ``work`` (all threads), and the count it returns."""
    started = time.process_time()
    count = work()
    return time.process_time() - started, count


# --- consumer ---------------------------------------------------------------------------


def consume(
    polled: Sequence[dict[tuple[str, int], list[Record]]], traces: tracing.Tracing | None
) -> tuple[int, list[list[processing.Routed]]]:
    """One pass as the pipeline makes it; returns the traced count and each poll's events."""
    router = processing.Router(routing.RoutingTable.default())
    encoder = encoding.Encoder(encoding.Limits(), "bench")
    tracer = consumer_tracing.BatchTracer(traces) if traces is not None else None
    traced, batches = 0, []
    for poll in polled:
        batch = processing.prepare(poll, router)
        spans = tracer.begin(batch, poll) if tracer is not None else None
        encoder.encode(batch.routed, now=0.0)
        consumer_tracing.BatchTracer.end(spans, published=True)
        traced += len(spans.open) if spans is not None else 0
        batches.append(batch.routed)
    flush(traces)
    return traced, batches


def flush(traces: tracing.Tracing | None) -> None:
    """Export every span now, so its export's CPU falls inside the timed work."""
    if traces is not None:
        traces.provider.force_flush()


def wire_messages(routed: Sequence[processing.Routed]) -> Iterator[bytes]:
    """What the publish script would make of a batch (per org), ids made up."""
    for org, items in processing.by_org(routed).items():
        yield wire.encode(
            org,
            [
                wire.RoutedEvent(
                    item.rooms,
                    {room: f"1-{item.offset}" for room in item.history},
                    orjson.loads(item.envelope_json),
                    item.traceparent,
                )
                for item in items
            ],
        )


# --- gateway ----------------------------------------------------------------------------


class CountingOutbox:
    def __init__(self) -> None:
        self.frames = 0

    def push(self, conn: Connection, frame: Frame) -> None:
        self.frames += 1


class NoGaps:
    def observe(self, org: str, seq: int | None) -> None:
        return None


def gateway(
    orgs: Sequence[str], clients: int, traces: tracing.Tracing | None
) -> tuple[Feed, CountingOutbox]:
    registry, outbox, metrics = Registry(), CountingOutbox(), Metrics()
    for org in orgs:
        for n in range(clients):
            conn = Connection(f"{org}-{n}", f"e-{org}-{n}", org, f"u-{n}", 0.0, open=True)
            registry.add(conn)
            registry.join(conn, f"org:{org}")
            registry.join(conn, f"fleet:org:{org}")
    delivery = Delivery(registry, outbox, metrics, max_held=1000)
    tracer = DeliveryTracer(traces, "bench-gw") if traces is not None else None
    return Feed(delivery, NoGaps(), metrics, tracer), outbox


def deliver(feed: Feed, outbox: CountingOutbox, messages: Sequence[bytes]) -> int:
    before = outbox.frames
    for raw in messages:
        feed.on_message(orjson.loads(raw)["org"], raw)
    return outbox.frames - before


def deliver_and_flush(
    feed: Feed, outbox: CountingOutbox, messages: Sequence[bytes], traces: tracing.Tracing | None
) -> int:
    delivered = deliver(feed, outbox, messages)
    flush(traces)
    return delivered


# --- the run ----------------------------------------------------------------------------


def measure(events: int, clients: int, rounds: int) -> list[Figures]:
    polled = polls(events)
    orgs = sorted({record_org(r) for poll in polled for r in poll[("t", 0)]})
    best: dict[str, Figures] = {}
    # A queue that holds every span of a pass: none is dropped, so none is free.
    os.environ.setdefault("OTEL_BSP_MAX_QUEUE_SIZE", str(4 * events))
    os.environ.setdefault("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "2048")
    with JaegerServer() as jaeger:
        tracers = {
            mode: (
                tracer_for(ratio, jaeger.otlp_endpoint, "bench-consumer"),
                tracer_for(ratio, jaeger.otlp_endpoint, "bench-gateway"),
            )
            for mode, ratio in MODES.items()
        }
        consume(polled, None)  # warm the allocator and the imports
        for _ in range(rounds):
            for mode, pair in tracers.items():
                best[mode] = _min(best.get(mode), one_round(mode, polled, orgs, clients, pair))
        for pair in tracers.values():
            for traces in pair:
                if traces is not None:
                    traces.shutdown()
    return [best[mode] for mode in MODES]


def record_org(record: Record) -> str:
    assert record.value is not None
    return str(orjson.loads(record.value)["organization_id"])


def one_round(
    mode: str,
    polled: Sequence[dict[tuple[str, int], list[Record]]],
    orgs: Sequence[str],
    clients: int,
    pair: tuple[tracing.Tracing | None, tracing.Tracing | None],
) -> Figures:
    consumer_traces, gateway_traces = pair
    events = sum(len(poll[("t", 0)]) for poll in polled)
    seconds, (traced, batches) = _timed_consume(polled, consumer_traces)
    # the publish script's part (not timed): the wire messages the gateways get
    messages = [raw for routed in batches for raw in wire_messages(routed)]
    feed, outbox = gateway(orgs, clients, gateway_traces)
    gateway_s, delivered = cpu(lambda: deliver_and_flush(feed, outbox, messages, gateway_traces))
    return Figures(
        mode, seconds / events * 1e6, gateway_s / delivered * 1e6, traced / events, delivered
    )


def _timed_consume(
    polled: Sequence[dict[tuple[str, int], list[Record]]], traces: tracing.Tracing | None
) -> tuple[float, tuple[int, list[list[processing.Routed]]]]:
    out: list[Any] = []

    def work() -> int:
        out.append(consume(polled, traces))
        return 0

    seconds, _ = cpu(work)
    return seconds, out[0]


def _min(kept: Figures | None, new: Figures) -> Figures:
    """Each figure's minimum over the rounds (the least disturbed by the shared machine)."""
    if kept is None:
        return new
    return Figures(
        new.mode,
        min(kept.consumer_us_per_event, new.consumer_us_per_event),
        min(kept.gateway_us_per_delivery, new.gateway_us_per_delivery),
        new.traced_share,
        new.deliveries,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=40_000)
    parser.add_argument("--clients", type=int, default=20, help="connections per org")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.events:,} events, {args.clients} connections per org, pid {os.getpid()}")
    for f in measure(args.events, args.clients, args.rounds):
        print(
            f"{f.mode:>8}: consumer {f.consumer_us_per_event:6.2f} µs/event, "
            f"gateway {f.gateway_us_per_delivery:6.3f} µs/delivery "
            f"({f.traced_share:.1%} of events traced, {f.deliveries:,} deliveries)"
        )


if __name__ == "__main__":
    main()
