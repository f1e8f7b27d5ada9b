"""µs per event of the consumer's decode-and-route (processing.prepare), no servers.

    .venv/bin/python -m bench.consumer_decode [--events 100000] [--rounds 7]

The demo fleet's mix (10 orgs x 250 units), polls of 2,000 records, a warm
route memo: the fast path as the consumer runs it. Each round times the
code as it is and the same code with the per-event ``occurred_at`` check
(events.is_rfc3339) replaced by a no-op, interleaved, so both see the same
load on a shared machine; the minimum of the rounds is the figure to compare.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import time
from dataclasses import dataclass

import orjson

from fleetcast.consumer import processing
from fleetcast.devtools import demo
from fleetcast.protocol import routing

POLL = 2000


@dataclass(frozen=True, slots=True)
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


def polls(count: int) -> list[dict[tuple[str, int], list[Record]]]:
    fleet = demo.Fleet(orgs=10, units_per_org=250, seed=1)
    records = [
        Record("t", 0, n, None, orjson.dumps(doc))
        for n, doc in enumerate(itertools.islice(fleet, count))
    ]
    return [{("t", 0): records[i : i + POLL]} for i in range(0, len(records), POLL)]


def timed(polled: list[dict[tuple[str, int], list[Record]]], router: processing.Router) -> float:
    """µs per event for one pass over ``polled``."""
    started = time.perf_counter()
    for poll in polled:
        processing.prepare(poll, router)
    return (time.perf_counter() - started) / sum(len(p[("t", 0)]) for p in polled) * 1e6


def no_check(text: str) -> bool:
    return True


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    polled = polls(args.events)
    router = processing.Router(routing.RoutingTable.default())
    timed(polled, router)  # warm the memo
    check = processing.is_rfc3339
    results: dict[str, list[float]] = {"as is": [], "without the occurred_at check": []}
    for _ in range(args.rounds):
        processing.is_rfc3339 = check  # type: ignore[misc]
        results["as is"].append(timed(polled, router))
        processing.is_rfc3339 = no_check  # type: ignore[misc]
        results["without the occurred_at check"].append(timed(polled, router))
    processing.is_rfc3339 = check  # type: ignore[misc]
    for name, values in results.items():
        print(f"{name}: min {min(values):.2f} µs/event, median {statistics.median(values):.2f}")


if __name__ == "__main__":
    main()
