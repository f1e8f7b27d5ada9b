"""The city-peak load on two gateways, one of them SIGKILLed while the load runs.

The clients of :mod:`bench.city` (consoles on the fleet map, field units on
their asset), half on gateway A, half on gateway B, each a
:class:`~bench.storm.client.ResumingClient` driven by the storm's
:class:`~bench.storm.reconnect.Reconnector`: when A dies its clients
reconnect to B the way a Service sends them there, with socket.io-client's
backoff, resuming every room with ``auth.since`` (the fleet room with
``null``: its snapshot is the recovery). Frames are tallied as the city
clients tally them (:func:`bench.city.client.count_frame`); batches and
snapshots are not parsed, every other event is, for its offsets and ids.

Loss is counted on the priority events (alerts, incidents, status changes:
every client of the org gets each one): each has a sequence number in the
phase (``bseq``), and a client must hold every one produced, once. Positions
are conflated by design (batches, a replay's latest per asset) and are not
counted as lost.
"""

from __future__ import annotations

import asyncio
import math
import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from bench import events, measure, procs
from bench.city.client import BATCH_PREFIX, SNAPSHOT_PREFIX, Tally, count_frame
from bench.city.run import City, Member, members, schedule
from bench.events import BenchEvent
from bench.loadgen.backoff import Backoff
from bench.pipeline import KafkaPublisher
from bench.servers import FleetcastGateway
from bench.storm import run
from bench.storm.client import ResumingClient
from bench.storm.reconnect import Reconnector
from fleetcast.protocol import events as protocol_events

PHASES: Final = ("before", "storm", "after")
#: Bounds: everyone connected, A's clients back on B, the last events delivered.
CONNECT_WITHIN_S: Final = 300.0
BACK_WITHIN_S: Final = 120.0
SETTLE_WITHIN_S: Final = 30.0
DRAIN_S: Final = 3.0
SETTLE_IDLE_S: Final = 3.0


class CityClient(ResumingClient):
    """A city client that survives its gateway: tallies like a MapClient, resumes like a storm's."""

    def __init__(self, index: int, member: Member, tally: Tally) -> None:
        super().__init__(index, member.token, rooms=member.rooms)
        self.tally = tally
        self.sample = member.sample
        self.counting = False
        #: The measured phase (``bph``) and the priority events of it received (``bseq``).
        self.phase = -1
        self.seqs: set[int] = set()
        #: Sessions this client lost (its gateway killed, or cut off).
        self.lost_connections = 0

    def _engineio(self, payload: bytes) -> None:
        if payload.startswith(b'42["'):
            if self.counting:
                count_frame(self.tally, payload, time.monotonic_ns(), sample=self.sample)
            if payload.startswith(BATCH_PREFIX) or payload.startswith(SNAPSHOT_PREFIX):
                return  # positions of the fleet room: no history, no offsets to keep
        super()._engineio(payload)

    def _delivered(self, payload: dict[str, Any]) -> None:
        super()._delivered(payload)
        data = payload.get("data")
        if not isinstance(data, dict) or data.get("bph") != self.phase:
            return  # another phase's (the snapshot's positions, a warm-up)
        if protocol_events.is_priority(str(payload.get("event_type"))):
            seq = data.get("bseq")
            if isinstance(seq, int):
                self.seqs.add(seq)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.ready:
            self.lost_connections += 1
        super().connection_lost(exc)


#: The two kinds of city client, told apart by their rooms.
KINDS: Final[dict[str, Callable[[CityClient], bool]]] = {
    "consoles": lambda c: "fleet" in c.rooms,
    "field units": lambda c: "fleet" not in c.rooms,
}


@dataclass(slots=True)
class Group:
    """The clients first placed on one gateway."""

    name: str
    clients: list[CityClient]
    tally: Tally = field(default_factory=Tally)


def build(city: City) -> tuple[Group, Group]:
    """Every city client, alternately on A and B: half the consoles and half the units each."""
    consoles, units = members(city)
    a, b = Group("A", []), Group("B", [])
    for index, member in enumerate([*consoles, *units]):
        group = a if index % 2 == 0 else b
        group.clients.append(CityClient(index, member, group.tally))
    return a, b


def split(
    sent_ns: Sequence[int], values: Sequence[float], kill_ns: int, back_ns: int | None
) -> dict[str, list[float]]:
    """Values by the phase their event was produced in: before the kill, from the kill
    until every client was back (the storm; to the end if they never all were), after."""
    phases: dict[str, list[float]] = {phase: [] for phase in PHASES}
    end = back_ns if back_ns is not None else None
    for sent, value in zip(sent_ns, values, strict=True):
        if sent < kill_ns:
            phases["before"].append(value)
        elif end is None or sent < end:
            phases["storm"].append(value)
        else:
            phases["after"].append(value)
    return phases


def missing(expected: set[int], clients: Sequence[CityClient]) -> list[int]:
    """Priority events of the phase each client never received."""
    return [len(expected - c.seqs) for c in clients]


def sort_out(
    moved: Sequence[CityClient], stayed: Sequence[CityClient], returned: frozenset[int]
) -> dict[str, list[CityClient]]:
    """Who may miss what: a client still served, or back with its history complete, must
    miss nothing; one told of a gap (``recovered: false``, then sent the org's snapshots)
    or never back has a reason the table gives apart."""
    groups: dict[str, list[CityClient]] = {"complete": [*stayed], "gap": [], "never back": []}
    for client in moved:
        if client.index not in returned:
            groups["never back"].append(client)
        elif client.recovered and not all(client.recovered.values()):
            groups["gap"].append(client)
        else:
            groups["complete"].append(client)
    return groups


@dataclass(frozen=True, slots=True)
class Usage:
    """CPU over one phase, in % of a core: each process's use and its wait for a core."""

    cpu: dict[str, float]
    #: Share of the phase the process was runnable but had no core (contention).
    waited: dict[str, float]
    #: Cores busy with anything else meanwhile (Kafka, Redis, the consumer, other users).
    others_cores: float


def usage(later: procs.CpuSample, earlier: procs.CpuSample, pids: dict[str, int]) -> Usage:
    elapsed = later.at - earlier.at
    return Usage(
        cpu={n: 100 * later.since(earlier, pid) / elapsed for n, pid in pids.items()},
        waited={n: later.waited_pct(earlier, pid) for n, pid in pids.items()},
        others_cores=later.others_cores(earlier),
    )


@dataclass(slots=True)
class Outcome:
    """What one storm measured: times are monotonic ns of this process."""

    connected: dict[str, int]
    phase: list[BenchEvent]
    sent: int
    #: Production started, A was killed, every moved client was back, production ended.
    start_ns: int
    kill_ns: int
    back_ns: int | None
    produced_ns: int
    time_to: dict[str, float | None]
    #: The same for A's consoles (their resume carries the fleet snapshot) and field units.
    time_to_by_kind: dict[str, dict[str, float | None]]
    moved: int
    back: int
    #: Indices of the moved clients that had a session on B again.
    returned: frozenset[int]
    #: By phase (before, storm, after).
    usage: dict[str, Usage]
    #: B's CPU seconds from the kill until every client was back.
    storm_cpu_s: float
    refusals: dict[str, int]
    #: Sessions B's own clients lost during the run (cut off by B).
    stayed_lost: int

    @property
    def produced(self) -> list[BenchEvent]:
        return self.phase[: self.sent]


def everyone(groups: Sequence[Group]) -> list[CityClient]:
    return [c for g in groups for c in g.clients]


async def connect(
    gateways: tuple[FleetcastGateway, FleetcastGateway],
    groups: tuple[Group, Group],
    reconnector: Reconnector,
) -> dict[str, int]:
    """Each group onto its gateway; how many of each have a session."""
    for gateway, group in zip(gateways, groups, strict=True):
        for client in group.clients:
            reconnector.ports[client.index] = gateway.port
    await reconnector.connect(CONNECT_WITHIN_S)
    return {g.name: sum(c.ready for c in g.clients) for g in groups}


async def storm(
    city: City,
    kafka: KafkaPublisher,
    gateways: tuple[FleetcastGateway, FleetcastGateway],
    groups: tuple[Group, Group],
    reconnector: Reconnector,
    seconds: tuple[float, float],
) -> Outcome:
    """``before`` s of the city's load, SIGKILL A, load until all are back + ``after`` s."""
    a, b = gateways
    connected = await connect(gateways, groups, reconnector)
    before_s, after_s = seconds
    phase = schedule(city, before_s + BACK_WITHIN_S + after_s)
    number = events.new_phase()
    for client in everyone(groups):
        client.phase, client.counting = number, True
    pids = {"A": a.pid, "B": b.pid, "clients": os.getpid()}
    start = procs.CpuSample.take(list(pids.values()))
    start_ns, stop_at = time.monotonic_ns(), [math.inf]
    rate = len(phase) / (before_s + BACK_WITHIN_S + after_s)
    producing = asyncio.create_task(
        kafka.paced(phase, rate, until=lambda: time.monotonic() >= stop_at[0])
    )
    try:
        await asyncio.sleep(before_s)
        killed = procs.CpuSample.take(list(pids.values()))
        refused_before = refusals(reconnector.clients)
        reconnector.move([c.index for c in groups[0].clients], b.port)
        kill_ns = time.monotonic_ns()
        os.kill(a.pid, signal.SIGKILL)
        measure.say(f"{city.name}: gateway A SIGKILLed; {reconnector.moved} clients to move")
        del pids["A"]
        back = await reconnector.all_back(BACK_WITHIN_S)
        back_ns = time.monotonic_ns() if back else None
        stormed = procs.CpuSample.take(list(pids.values()))
        stop_at[0] = time.monotonic() + after_s
        sent = await producing
    finally:
        producing.cancel()
    produced = procs.CpuSample.take(list(pids.values()))
    produced_ns = time.monotonic_ns()
    await settle({e.seq for e in phase[:sent] if e.category == events.PRIORITY}, everyone(groups))
    refused = refusals(reconnector.clients)
    return Outcome(
        connected=connected,
        phase=phase,
        sent=sent,
        start_ns=start_ns,
        kill_ns=kill_ns,
        back_ns=back_ns,
        produced_ns=produced_ns,
        time_to=reconnector.time_to(),
        time_to_by_kind={
            kind: reconnector.time_to(among=[c.index for c in groups[0].clients if is_kind(c)])
            for kind, is_kind in KINDS.items()
        },
        moved=reconnector.moved,
        back=len(reconnector.back_after),
        returned=frozenset(reconnector.back_after),
        usage={
            "before": usage(killed, start, {"A": a.pid, **pids}),
            "storm": usage(stormed, killed, pids),
            "after": usage(produced, stormed, pids),
        },
        storm_cpu_s=stormed.since(killed, b.pid),
        refusals={k: v - refused_before[k] for k, v in refused.items()}
        | {"failed attempts (any cause)": reconnector.connect_failures},
        stayed_lost=sum(c.lost_connections for c in groups[1].clients),
    )


def refusals(clients: Sequence[ResumingClient]) -> dict[str, int]:
    """Refusals the clients met so far: admission, the overload guard, subscribes."""
    return {
        "rate_limited": sum(len(c.refusals) for c in clients),
        "503 overloaded": sum(c.errors.count("http_503") for c in clients),
        "attempts timed out": sum(c.errors.count("timeout") for c in clients),
        "subscribe refused": sum(len(c.subscribe_refusals) for c in clients),
    }


async def settle(expected: set[int], city: Sequence[CityClient]) -> None:
    """Until every client holds every expected event, nothing arrives for a while, or the bound."""
    await asyncio.sleep(DRAIN_S)
    await run.settle(
        lambda: sum(missing(expected, city)),
        lambda: sum(len(c.seqs) for c in city),
        time.monotonic() + SETTLE_WITHIN_S,
        SETTLE_IDLE_S,
    )


async def run_storm(
    city: City,
    kafka: KafkaPublisher,
    gateways: tuple[FleetcastGateway, FleetcastGateway],
    seconds: tuple[float, float],
) -> tuple[Outcome, tuple[Group, Group]]:
    """Start both gateways, run the storm, stop everything it started."""
    groups = build(city)
    reconnector = Reconnector(everyone(groups), Backoff())
    try:
        for gateway in gateways:
            await gateway.start()
        outcome = await storm(city, kafka, gateways, groups, reconnector, seconds)
    finally:
        for client in everyone(groups):
            client.counting = False
        await reconnector.close()
        for gateway in gateways:
            gateway.stop()
    return outcome, groups
