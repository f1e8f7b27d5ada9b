"""What the clients of one load generator process received during a phase.

A phase is armed with the number of events the publisher will send
(sequence numbers ``0..nseq-1``). Each delivery costs a regex match, two
array appends and one counter increment: the raw material for latency
percentiles and for exact per-client accounting (lost, duplicated, and
unexpected events, the last one being a leak into a room the client is not in).

A (client, event) pair is one delivery however many copies arrive: the first
copy gives the latency sample and counts; later ones only raise the client's
count for that event (and :attr:`Recorder.copies`), so a wait for N
deliveries is not ended early by copies. :func:`account` then tells the copies
a per-channel server sends for overlapping memberships ("room copies") from
duplicates.
"""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from bench.loadgen import codec


@dataclass(slots=True)
class Recorder:
    nseq: int = 0
    phase: int = 0
    armed: bool = False
    #: per client: how many times each sequence number arrived
    counts: list[bytearray] = field(default_factory=list)
    seqs: array[int] = field(default_factory=lambda: array("q"))
    latencies_ns: array[int] = field(default_factory=lambda: array("q"))
    stray: int = 0
    #: Arrivals of an event the client already had (room copies and duplicates).
    copies: int = 0
    first_ns: int = 0
    last_ns: int = 0
    closes: Counter[str] = field(default_factory=Counter)
    closed_clients: set[int] = field(default_factory=set)

    def size(self, clients: int) -> None:
        """Make room for ``clients`` clients (indexes ``0..clients-1``)."""
        while len(self.counts) < clients:
            self.counts.append(bytearray(self.nseq))

    def arm(self, nseq: int, phase: int) -> None:
        """Start phase ``phase`` of ``nseq`` events; forget the previous one."""
        self.nseq = nseq
        self.phase = phase
        self.counts = [bytearray(nseq) for _ in self.counts]
        self.seqs = array("q")
        self.latencies_ns = array("q")
        self.stray = self.copies = 0
        self.first_ns = self.last_ns = 0
        self.armed = True

    def receive(self, index: int, frames: Iterable[tuple[int, bool, bytes]], now_ns: int) -> None:
        """Hot path: count the benchmark events among ``frames`` for one client."""
        if not self.armed:
            return
        counts = self.counts[index]
        probe = codec.PROBE.search
        for _opcode, _fin, payload in frames:
            found = probe(payload)
            if found is None:
                continue
            seq = int(found[2])
            if seq >= self.nseq or int(found[1]) != self.phase:
                self.stray += 1
                continue
            seen = counts[seq]
            if seen < 255:
                counts[seq] = seen + 1
            if seen:
                self.copies += 1
            else:
                self.seqs.append(seq)
                self.latencies_ns.append(now_ns - int(found[3]))
            if not self.first_ns:
                self.first_ns = now_ns
            self.last_ns = now_ns

    def closed(self, index: int, reason: str) -> None:
        self.closes[reason] += 1
        self.closed_clients.add(index)

    @property
    def deliveries(self) -> int:
        """Unique (client, event) pairs received: copies are not counted."""
        return len(self.seqs)


@dataclass(frozen=True, slots=True)
class Accounting:
    """Per-phase totals over all clients of this process."""

    clients: int
    expected: int
    #: Unique (client, event) pairs received.
    received: int
    lost: int
    #: Copies nothing explains (beyond the room copies).
    duplicated: int
    #: Extra copies of an event that a client's memberships in several of its
    #: rooms explain, on a server that delivers per channel (see :func:`account`).
    room_copies: int
    unexpected: int
    clients_with_loss: int
    lost_by_category: dict[str, int]


def account(
    counts: Sequence[bytearray],
    client_rooms: Sequence[Sequence[str]],
    event_rooms: Sequence[Sequence[str]],
    categories: Sequence[int],
    category_names: Sequence[str],
    *,
    per_channel: bool = False,
) -> Accounting:
    """Compare what each client received with what its rooms should have brought.

    ``event_rooms[seq]`` are the server-side rooms event ``seq`` was published
    to; a client in any of them must receive it, and it counts once. fleetcast
    and Node deliver an event once per client whatever rooms it shares, so
    every further copy is a duplicate. A server that delivers per channel
    (``per_channel``: Centrifugo's broadcast publishes once per channel) sends
    a client in n of the event's rooms n copies: up to n - 1 extra copies are
    *room copies*, the cost of that model, and only copies beyond n are
    duplicates.
    """
    nseq = len(event_rooms)
    room_masks = _room_masks(event_rooms)
    cats = np.asarray(categories, dtype=np.int64)
    lost_by = np.zeros(len(category_names), dtype=np.int64)
    totals = Counter[str]()
    for got_raw, rooms in zip(counts, client_rooms, strict=True):
        memberships = np.zeros(nseq, dtype=np.int64)
        for name in rooms:
            mask = room_masks.get(name)
            if mask is not None:
                memberships += mask
        want = memberships > 0
        got = np.frombuffer(bytes(got_raw[:nseq]), dtype=np.uint8).astype(np.int64)
        extra = np.clip(got - 1, 0, None)
        excused = (
            np.minimum(extra, np.clip(memberships - 1, 0, None))
            if per_channel
            else np.zeros_like(extra)
        )
        missing = want & (got == 0)
        totals["expected"] += int(want.sum())
        totals["received"] += int((got > 0).sum())
        totals["lost"] += int(missing.sum())
        totals["room_copies"] += int(excused.sum())
        totals["duplicated"] += int((extra - excused).sum())
        totals["unexpected"] += int(((~want) & (got > 0)).sum())
        totals["with_loss"] += bool(missing.any())
        lost_by += np.bincount(cats[missing], minlength=len(category_names))
    return Accounting(
        clients=len(counts),
        expected=totals["expected"],
        received=totals["received"],
        lost=totals["lost"],
        duplicated=totals["duplicated"],
        room_copies=totals["room_copies"],
        unexpected=totals["unexpected"],
        clients_with_loss=totals["with_loss"],
        lost_by_category={n: int(v) for n, v in zip(category_names, lost_by, strict=True)},
    )


def _room_masks(event_rooms: Sequence[Sequence[str]]) -> dict[str, npt.NDArray[np.bool_]]:
    """Per room, which of the phase's events were published to it."""
    nseq = len(event_rooms)
    masks: dict[str, npt.NDArray[np.bool_]] = {}
    for seq, names in enumerate(event_rooms):
        for name in names:
            masks.setdefault(name, np.zeros(nseq, dtype=np.bool_))[seq] = True
    return masks
