"""Fleet room logic without a server: batches, conflation, catch-up, snapshot reads."""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Mapping
from typing import Any

import orjson
import pytest

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms import fleet, snapshots
from fleetcast.gateway.rooms.delivery import Delivery
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol import rooms
from fleetcast.protocol.wire import RoutedEvent

FLEET = rooms.fleet_room("o1").name


def conn(sid: str, org: str = "o1") -> Connection:
    return Connection(sid, "e" + sid, org, sid, 0.0, open=True)


def position(asset: str, seq: int, org: str = "o1") -> dict[str, Any]:
    return {
        "event_id": f"{asset}-{seq}",
        "event_type": "asset_position_updated",
        "organization_id": org,
        "occurred_at": f"2026-11-25T18:00:{seq:02d}Z",
        "data": {"asset_id": asset, "seq": seq},
    }


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Frame]] = []

    def push(self, c: Connection, frame: Frame) -> None:
        self.sent.append((c.sid, frame))

    def decoded(self, sid: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        return [json.loads(f.text[1:]) for s, f in self.sent if sid is None or s == sid]


class Setup:
    def __init__(self) -> None:
        self.registry = Registry()
        self.sender = Recorder()
        self.metrics = Metrics()
        self.fm = fleet.FleetMetrics(self.metrics.registry)
        self.batcher = fleet.FleetBatcher(
            self.registry, self.sender, self.metrics, self.fm, interval_s=1.0
        )

    def member(self, sid: str, org: str = "o1") -> Connection:
        c = conn(sid, org)
        self.registry.add(c)
        self.registry.join(c, rooms.fleet_room(org).name)
        return c


def seqs(payload: Mapping[str, Any]) -> dict[str, int]:
    return {p["asset_id"]: p["seq"] for p in payload["data"]["positions"]}


def test_one_batch_per_org_latest_position_wins_encoded_once() -> None:
    s = Setup()
    a, b = s.member("a"), s.member("b")
    for seq in range(5):
        s.batcher.add("o1", position("x", seq))
    s.batcher.add("o1", position("y", 1))
    assert s.batcher.flush() == 2
    (sa, fa), (sb, fb) = s.sender.sent
    assert {sa, sb} == {a.sid, b.sid}
    assert fa is fb  # one encoding for every member
    assert fa.priority is False
    name, payload = s.sender.decoded("a")[0]
    assert name == "asset_positions"
    assert payload["room"] == "fleet"
    assert payload["organization_id"] == "o1"
    assert seqs(payload) == {"x": 4, "y": 1}
    assert payload["data"]["positions"][0]["occurred_at"] == "2026-11-25T18:00:04Z"
    assert s.batcher.flush() == 0  # nothing moved since


def test_orgs_never_mix() -> None:
    s = Setup()
    s.member("a", "o1")
    s.member("b", "o2")
    s.batcher.add("o1", position("x", 1))
    s.batcher.add("o2", position("z", 1, org="o2"))
    s.batcher.flush()
    assert seqs(s.sender.decoded("a")[0][1]) == {"x": 1}
    assert seqs(s.sender.decoded("b")[0][1]) == {"z": 1}


def test_held_member_gets_nothing_until_released() -> None:
    s = Setup()
    a = s.member("a")
    assert s.batcher.hold(a)
    assert not s.batcher.hold(a)
    s.batcher.add("o1", position("x", 1))
    s.batcher.flush()
    s.batcher.add("o1", position("x", 2))
    s.batcher.flush()
    assert s.sender.sent == []
    assert [dict(m) for m in s.batcher.release(a)] == [
        {"x": position("x", 1)},
        {"x": position("x", 2)},
    ]


def test_member_behind_is_owed_one_merged_batch() -> None:
    s = Setup()
    slow, fast = s.member("slow"), s.member("fast")
    slow.bulk = deque([Frame("2[]", False)])  # a batch still waiting
    s.batcher.add("o1", position("x", 1))
    s.batcher.add("o1", position("y", 1))
    s.batcher.flush()
    s.batcher.add("o1", position("x", 2))
    s.batcher.flush()
    assert [sid for sid, _ in s.sender.sent] == ["fast", "fast"]
    slow.bulk.clear()  # it caught up
    s.batcher.flush()  # nothing moved, but it is owed
    assert [sid for sid, _ in s.sender.sent] == ["fast", "fast", "slow"]
    assert seqs(s.sender.decoded("slow")[0][1]) == {"x": 2, "y": 1}
    s.batcher.flush()
    assert len(s.sender.sent) == 3
    assert fast.sid == "fast"


def test_owed_member_that_left_is_forgotten() -> None:
    s = Setup()
    slow = s.member("slow")
    slow.bulk = deque([Frame("2[]", False)])
    s.batcher.add("o1", position("x", 1))
    s.batcher.flush()
    s.registry.remove("slow")
    slow.bulk.clear()
    s.batcher.flush()
    assert s.sender.sent == []


def test_delivery_sends_positions_of_the_fleet_room_to_the_batcher_only() -> None:
    s = Setup()
    watcher, follower = s.member("w"), s.member("f")
    s.registry.join(follower, "asset:x:org:o1")
    delivery = Delivery(s.registry, s.sender, s.metrics, max_held=10, fleet=s.batcher)
    rooms_of = ("asset:x:org:o1", FLEET)
    assert delivery.deliver(
        "o1", RoutedEvent(rooms_of, {"asset:x:org:o1": "1-0"}, position("x", 1))
    )
    assert [sid for sid, _ in s.sender.sent] == ["f"]  # the asset room, at once
    status = {**position("x", 2), "event_type": "asset_status_changed"}
    delivery.deliver("o1", RoutedEvent(rooms_of, {}, status))
    assert [sid for sid, _ in s.sender.sent] == ["f", "f", "w"]  # status: at once, every member
    s.batcher.flush()
    assert sorted(sid for sid, _ in s.sender.sent[3:]) == ["f", "w"]
    assert watcher.sid == "w"


# --- snapshots ---------------------------------------------------------------------


def raw(now_ms: int, seen: dict[str, float], **positions: dict[str, Any]) -> snapshots.RawSnapshot:
    return snapshots.RawSnapshot(
        now_ms=now_ms,
        last_seen=list(seen.items()),
        positions={a: orjson.dumps(e) for a, e in positions.items()},
        statuses={},
    )


def test_live_assets_skip_aged_out_and_keep_the_most_recent() -> None:
    r = raw(1_000_000, {"old": 1_000_000 - 901_000, "a": 999_000, "b": 998_000, "c": 997_000})
    assert sorted(snapshots.live_assets(r, ttl_s=900, max_assets=10)) == ["a", "b", "c"]
    assert sorted(snapshots.live_assets(r, ttl_s=900, max_assets=2)) == ["a", "b"]


async def test_decode_skips_unreadable_foreign_and_unseen_entries() -> None:
    r = snapshots.RawSnapshot(
        now_ms=1_000_000,
        last_seen=[("a", 999_000.0), ("bad", 999_000.0), ("foreign", 999_000.0)],
        positions={
            "a": orjson.dumps(position("a", 1)),
            "bad": b"{not json",
            "foreign": orjson.dumps(position("foreign", 1, org="o2")),
            "unseen": orjson.dumps(position("unseen", 1)),
        },
        statuses={},
    )
    snap = await snapshots.decode("o1", r, ttl_s=900, max_assets=100)
    assert list(snap.positions) == ["a"]
    assert snap.taken_at == "1970-01-01T00:16:40.000Z"


def test_catch_up_is_what_the_snapshot_lacks_latest_per_asset() -> None:
    snap = snapshots.Snapshot(
        "o1", "t", positions={"x": position("x", 5), "y": position("y", 5)}, text="cached"
    )
    held = [
        {"x": position("x", 3), "y": position("y", 7), "z": position("z", 1)},
        {"z": position("z", 2)},
    ]
    owed = snapshots.catch_up(snap, held)
    # x: the snapshot's is newer (read after it); y: live is newer; z: new, latest wins.
    assert {a: e["data"]["seq"] for a, e in owed.items()} == {"y": 7, "z": 2}
    assert snap.text == "cached"  # the shared snapshot and its frame are untouched
    assert snap.positions["y"]["data"]["seq"] == 5


def test_catch_up_never_goes_back_in_time_across_held_batches() -> None:
    snap = snapshots.Snapshot("o1", "t")
    owed = snapshots.catch_up(snap, [{"x": position("x", 4)}, {"x": position("x", 2)}])
    assert owed["x"]["data"]["seq"] == 4


def test_snapshot_frame_is_priority_and_encoded_once() -> None:
    snap = snapshots.Snapshot("o1", "2026-11-25T18:00:00.000Z", positions={"x": position("x", 1)})
    first, second = fleet.snapshot_frame(snap), fleet.snapshot_frame(snap)
    assert first.priority is True
    assert first.text is second.text
    name, payload = json.loads(first.text[1:])
    assert name == "fleet_snapshot"
    assert payload["taken_at"] == "2026-11-25T18:00:00.000Z"
    assert payload["data"] == {
        "positions": [{"asset_id": "x", "seq": 1, "occurred_at": "2026-11-25T18:00:01Z"}],
        "statuses": [],
        "complete": True,
    }


class SlowSource:
    """Counts fetches; each takes a while, so subscribes pile up behind it."""

    def __init__(self, fail: bool = False) -> None:
        self.fetches = 0
        self.fail = fail
        self.gate = asyncio.Event()

    async def fetch(self, org: str) -> snapshots.RawSnapshot:
        self.fetches += 1
        await self.gate.wait()
        self.gate.clear()
        if self.fail:
            raise ConnectionError("redis away")
        return raw(1_000_000, {"a": 999_000.0}, a=position("a", self.fetches))


def spawner(owned: list[asyncio.Task[Any]]) -> snapshots.Spawn:
    def spawn(coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        owned.append(task)
        return task

    return spawn


def reader_of(
    source: SlowSource, spacing_s: float = 0.0
) -> tuple[snapshots.SnapshotReader, list[asyncio.Task[Any]]]:
    owned: list[asyncio.Task[Any]] = []
    reader = snapshots.SnapshotReader(
        source, spawner(owned), ttl_s=900, max_assets=10, spacing_s=spacing_s
    )
    return reader, owned


async def test_reads_coalesce_behind_the_one_in_flight() -> None:
    source = SlowSource()
    reader, owned = reader_of(source)
    first = asyncio.create_task(reader.read("o1"))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert source.fetches == 1
    later = [asyncio.create_task(reader.read("o1")) for _ in range(5)]
    await asyncio.sleep(0)
    source.gate.set()
    assert (await first).positions["a"]["data"]["seq"] == 1
    await asyncio.sleep(0.01)
    assert source.fetches == 2  # the five waited for one read, sent after they asked
    source.gate.set()
    results = await asyncio.gather(*later)
    assert {r.positions["a"]["data"]["seq"] for r in results} == {2}
    assert len({id(r) for r in results}) == 1  # one decoded snapshot, shared
    await asyncio.gather(*owned)


async def test_reads_of_an_org_start_spaced_so_a_trickle_shares_them() -> None:
    source = SlowSource()
    source.gate.set()  # every fetch answers at once
    reader, owned = reader_of(source, spacing_s=0.2)
    first = await reader.read("o1")
    assert source.fetches == 1
    # Consoles trickle in after the read ended, each 20 ms apart.
    trickle = []
    for _ in range(4):
        trickle.append(asyncio.create_task(reader.read("o1")))
        await asyncio.sleep(0.02)
        source.gate.set()
    assert source.fetches == 1  # they wait out the spacing together
    results = await asyncio.gather(*trickle)
    assert source.fetches == 2  # one read, sent after the last of them asked
    assert len({id(r) for r in results}) == 1
    assert results[0] is not first
    await asyncio.gather(*owned)


async def test_a_failed_read_raises_for_its_waiters_only() -> None:
    source = SlowSource(fail=True)
    reader, owned = reader_of(source)
    waiter = asyncio.create_task(reader.read("o1"))
    await asyncio.sleep(0.01)
    source.gate.set()
    with pytest.raises(ConnectionError):
        await waiter
    source.fail = False
    second = asyncio.create_task(reader.read("o1"))
    await asyncio.sleep(0.01)
    source.gate.set()
    assert (await second).complete
    await asyncio.gather(*owned)


async def test_fleet_room_folds_batches_flushed_during_the_read_into_the_snapshot() -> None:
    s = Setup()
    source = SlowSource()
    reader, owned = reader_of(source)
    room = fleet.FleetRoom(s.batcher, reader, s.sender, s.fm, spawner(owned))
    joiner = s.member("j")
    s.member("other")
    joining = asyncio.create_task(room.joined(joiner, rooms.fleet_room("o1")))
    await asyncio.sleep(0.01)
    s.batcher.add("o1", position("b", 9))  # arrives while the snapshot is read
    s.batcher.flush()
    assert [sid for sid, _ in s.sender.sent] == ["other"]
    source.gate.set()
    ack = await joining
    assert ack == {"snapshot": {"assets": 2, "complete": True}}
    (name, payload), (then, caught_up) = s.sender.decoded("j")
    assert name == "fleet_snapshot"
    assert seqs(payload) == {"a": 1}
    assert then == "asset_positions"  # what the read lacked, right after it
    assert seqs(caught_up) == {"b": 9}
    s.batcher.add("o1", position("b", 10))
    s.batcher.flush()
    assert [n for n, _ in s.sender.decoded("j")] == [
        "fleet_snapshot",
        "asset_positions",
        "asset_positions",
    ]


async def test_subscribers_of_one_read_share_its_snapshot_frame() -> None:
    s = Setup()
    source = SlowSource()
    reader, owned = reader_of(source)
    room = fleet.FleetRoom(s.batcher, reader, s.sender, s.fm, spawner(owned))
    blocker = asyncio.create_task(reader.read("o1"))  # a read in flight
    await asyncio.sleep(0.01)
    early = s.member("early")
    first = asyncio.create_task(room.joined(early, rooms.fleet_room("o1")))
    await asyncio.sleep(0.01)
    s.batcher.add("o1", position("b", 9))  # only "early" is held for this batch
    s.batcher.flush()
    late = s.member("late")
    second = asyncio.create_task(room.joined(late, rooms.fleet_room("o1")))
    await asyncio.sleep(0.01)
    source.gate.set()
    await blocker
    await asyncio.sleep(0.01)
    source.gate.set()
    await asyncio.gather(first, second)
    frames = {sid: [f for s_, f in s.sender.sent if s_ == sid] for sid in ("early", "late")}
    assert frames["early"][0].text is frames["late"][0].text  # encoded once
    assert len(frames["early"]) == 2  # its snapshot and its own catch-up batch
    assert len(frames["late"]) == 1
    await asyncio.gather(*owned)
    await asyncio.gather(*owned)


async def test_fleet_room_answers_without_redis() -> None:
    s = Setup()
    source = SlowSource(fail=True)
    reader, owned = reader_of(source)
    room = fleet.FleetRoom(s.batcher, reader, s.sender, s.fm, spawner(owned))
    joiner = s.member("j")
    joining = asyncio.create_task(room.joined(joiner, rooms.fleet_room("o1")))
    await asyncio.sleep(0.01)
    s.batcher.add("o1", position("b", 1))
    s.batcher.flush()
    source.gate.set()
    assert await joining == {"snapshot": {"assets": 1, "complete": False}}
    (name, payload), (then, caught_up) = s.sender.decoded("j")
    assert name == "fleet_snapshot"
    assert payload["data"]["complete"] is False
    assert seqs(payload) == {}
    assert then == "asset_positions"
    assert seqs(caught_up) == {"b": 1}
    await asyncio.gather(*owned)
