"""Sharded pub/sub on a Redis Cluster: one connection per shard that holds orgs we need.

On a cluster an org's channel lives in its org's slot (keys.tag) and the
consumer publishes with SPUBLISH, which only that shard's nodes carry. So
the gateway keeps one :class:`ShardListener` (SSUBSCRIBE) per master that
serves an org its clients need, not one per org, and each has its own
canary, on a channel whose tag hashes into that shard, so the canary proves
the very connection the org's events take. The control channel rides on
the shard serving the ``{control}`` slot.

Topology moves under us: a master dies and its replica takes over (a new
address), or a slot migrates to another shard (Redis then pushes
``sunsubscribe`` for its channels). :class:`Shards` reloads the slot map
(CLUSTER SLOTS through redis-py's cluster client) every
``check_s`` and at once on such a push or a lost connection; each org whose
slot moved is released on the old shard, acquired on the new one and its
gap recovered from history (rooms/recovery.py), so nothing is lost, and the
replay's offsets keep anything from showing twice. A shard with nothing left
to carry is stopped.

One Redis (not a cluster) keeps listener.Listener and one canary.Canary.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import redis.asyncio as aioredis
import structlog
from redis.asyncio.cluster import RedisCluster
from redis.crc import key_slot

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.redis.book import SubscriptionBook
from fleetcast.gateway.redis.canary import Canary, Echoes
from fleetcast.gateway.redis.listener import (
    Batch,
    ChannelHandler,
    EventSink,
    Listener,
    OnConnected,
    OnOrg,
)
from fleetcast.protocol import keys

log = structlog.stdlib.get_logger(__name__)

#: Slot map reloads when nothing asked for one (seconds).
CHECK_S: Final = 1.0
#: Told an org whose slot moved to another shard (the gap recovery's request).
Recover = Callable[[str, str], None]


def slot_tag(slots: set[int]) -> str:
    """A short hash tag whose slot is one of ``slots`` (for a shard's canary channel)."""
    for n in itertools.count():
        tag = f"s{n}"
        if key_slot(tag.encode()) in slots:
            return tag
    raise AssertionError("unreachable")


def by_slot(channels: Sequence[str]) -> list[list[str]]:
    """``channels`` grouped by hash slot, in first-seen order (SSUBSCRIBE wants one slot)."""
    groups: dict[int, list[str]] = {}
    for channel in channels:
        groups.setdefault(key_slot(channel.encode()), []).append(channel)
    return list(groups.values())


class ShardListener(Listener):
    """A Listener on one cluster node, with sharded pub/sub (SSUBSCRIBE, ``smessage``)."""

    MESSAGE = b"smessage"
    SUBSCRIBED = "ssubscribe"

    def __init__(self, client: Any, metrics: Metrics, *, on_moved: Callable[[], None], **kw: Any):
        super().__init__(client, metrics, **kw)
        self._on_moved = on_moved
        self._leaving: set[str] = set()

    async def _connect(self, channels: Sequence[str]) -> Any:
        pubsub = self._client.pubsub()
        try:
            await self._subscribe(pubsub, channels)
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        return pubsub

    async def _subscribe(self, pubsub: Any, channels: Sequence[str]) -> None:
        for group in by_slot(channels):  # one SSUBSCRIBE names channels of one slot
            await pubsub.ssubscribe(*group)

    async def _unsubscribe(self, pubsub: Any, channels: Sequence[str]) -> None:
        self._leaving.update(channels)
        for group in by_slot(channels):
            await pubsub.sunsubscribe(*group)

    async def _close(self) -> None:
        """A connection ended (lost, or reset): after a failover its node may be gone for
        good, so the slot map is checked at once."""
        await super()._close()
        self._leaving.clear()
        self._on_moved()

    def _other(self, message: Mapping[str, Any]) -> None:
        """A sunsubscribe we did not ask for: the slot left this shard."""
        if message.get("type") != "sunsubscribe":
            return
        channel = message.get("channel")
        name = channel.decode() if isinstance(channel, bytes) else str(channel)
        if name in self._leaving:
            self._leaving.discard(name)
            return
        log.info("shard dropped a channel (slot moved)", channel=name)
        self._on_moved()


class NodePublisher:
    """What a shard's canary publishes through: SPUBLISH on that node."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._client = client

    async def publish(self, channel: str, message: str) -> int:
        return int(await self._client.spublish(channel, message))


@dataclass
class Shard:
    """One master node: its client, listener, canary and their tasks."""

    name: str
    client: aioredis.Redis
    listener: ShardListener
    canary: Canary
    echoes: Echoes
    canary_tag: str
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    async def stop(self) -> None:
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        with contextlib.suppress(Exception):
            await self.client.aclose()


@dataclass(frozen=True)
class ShardOptions:
    """What every shard's listener and canary are built with (the gateway's settings)."""

    gateway_id: str
    backoff_max_s: float
    canary_interval_s: float
    canary_timeout_s: float
    timeout_s: float
    check_s: float = CHECK_S
    #: Connection options of each node's client (credentials, TLS) from the URL.
    node_kwargs: Mapping[str, Any] = field(default_factory=dict)


class Shards:
    """Org subscriptions over one sharded pub/sub connection per shard (see the module doc).

    Offers what the edge and /ready need of the one-Redis Listener and Canary:
    ``acquire``/``release``, ``orgs``, ``connected`` and ``healthy``.
    """

    def __init__(
        self,
        cluster: RedisCluster,
        metrics: Metrics,
        options: ShardOptions,
        *,
        sink: EventSink,
        control: ChannelHandler,
        recover: Recover,
        on_control_moved: Callable[[], None],
        batch: Batch = contextlib.nullcontext,
        on_connected: Sequence[OnConnected] = (),
        on_subscribed: Sequence[OnOrg] = (),
        on_unsubscribed: Sequence[OnOrg] = (),
    ) -> None:
        self._cluster = cluster
        self._metrics = metrics
        self._options = options
        self._sink, self._control, self._recover = sink, control, recover
        self._on_control_moved = on_control_moved
        self._hooks: dict[str, Any] = {
            "batch": batch,
            "on_connected": on_connected,
            "on_subscribed": on_subscribed,
            "on_unsubscribed": on_unsubscribed,
        }
        self.book = SubscriptionBook()
        self._home: dict[str, str] = {}
        self._control_home: str | None = None
        self._shards: dict[str, Shard] = {}
        self._ready = asyncio.Event()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        #: Slot map reloads, and orgs moved to another shard, so far.
        self.reloads = self.moves = 0

    # --- what the edge and /ready see -----------------------------------------------------

    @property
    def orgs(self) -> list[str]:
        return self.book.orgs

    @property
    def shards(self) -> dict[str, list[str]]:
        """Shard (node address) -> the orgs it carries for us (tests and /stats)."""
        out: dict[str, list[str]] = {name: [] for name in self._shards}
        for org, name in self._home.items():
            out.setdefault(name, []).append(org)
        return {name: sorted(orgs) for name, orgs in out.items()}

    @property
    def connected(self) -> bool:
        return bool(self._shards) and all(s.listener.connected for s in self._shards.values())

    @property
    def healthy(self) -> bool:
        """Every shard's canary came back recently (the control shard is one of them)."""
        return (
            self._control_home is not None
            and bool(self._shards)
            and all(shard.canary.healthy for shard in self._shards.values())
        )

    async def acquire(self, org: str) -> None:
        await self._ready.wait()
        if not self.book.want(org):
            name = self._home.get(org)
            if name in self._shards:
                await self._shards[name].listener.confirmed(org)
            return
        async with self._lock:
            shard = self._shard(self._master(keys.org_channel(org)))
            self._home[org] = shard.name
        await shard.listener.acquire(org)

    async def release(self, org: str) -> None:
        if not self.book.unwant(org):
            return
        async with self._lock:
            name = self._home.pop(org, None)
        if name in self._shards:
            await self._shards[name].listener.release(org)

    def moved(self) -> None:
        """Something says the topology changed: check at once."""
        self._wake.set()

    # --- the service ---------------------------------------------------------------------------

    async def run(self) -> None:
        """Keep the shards in line with the slot map until cancelled; then stop them all."""
        try:
            while True:
                try:
                    await self._check()
                except Exception as exc:  # the cluster is unreachable: try again
                    log.warning("redis cluster topology not loaded", error=repr(exc))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._options.check_s):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            for shard in list(self._shards.values()):
                await shard.stop()
            self._shards.clear()

    async def _check(self) -> None:
        """Reload the slot map; move what moved; stop shards left with nothing."""
        await self._cluster.nodes_manager.initialize()
        self.reloads += 1
        async with self._lock:
            await self._place_control()
            for org, name in list(self._home.items()):
                target = self._master(keys.org_channel(org))
                if target != name:
                    await self._move(org, name, target)
            for shard in list(self._shards.values()):
                await self._retag(shard)
            self._ready.set()
            for name in [n for n, orgs in self.shards.items() if not orgs]:
                if name != self._control_home:
                    await self._shards.pop(name).stop()

    async def _place_control(self) -> None:
        target = self._master(keys.control_channel())
        if target == self._control_home and target in self._shards:
            return
        old, self._control_home = self._control_home, target
        await self._shard(target).listener.carry(keys.control_channel(), self._control)
        if old in self._shards:
            await self._shards[old].listener.drop(keys.control_channel())
        if old is not None:
            log.info("control channel moved", to=target)
            self._on_control_moved()

    async def _move(self, org: str, old: str, new: str) -> None:
        """Release on the old shard, acquire on the new, then recover what was missed."""
        self.moves += 1
        log.info("org moved to another shard", org=org, source=old, target=new)
        if old in self._shards:
            await self._shards[old].listener.release(org)
        self._home[org] = new
        await self._shard(new).listener.acquire(org)
        self._recover(org, "moved")

    async def _retag(self, shard: Shard) -> None:
        """Give the shard's canary a channel in its own slots again if its slot left."""
        slots = self._slots(shard.name)
        if not slots or key_slot(shard.canary_tag.encode()) in slots:
            return
        tag = slot_tag(slots)
        old = shard.canary.channel
        shard.canary.channel, shard.canary_tag = keys.canary_channel(self._gw, tag), tag
        await shard.listener.carry(shard.canary.channel, shard.echoes.back)
        await shard.listener.drop(old)

    # --- shards ----------------------------------------------------------------------------------

    @property
    def _gw(self) -> str:
        return self._options.gateway_id

    def _master(self, key: str) -> str:
        node = self._cluster.nodes_manager.get_node_from_slot(key_slot(key.encode()))
        return str(node.name)

    def _slots(self, name: str) -> set[int]:
        cache = self._cluster.nodes_manager.slots_cache
        return {slot for slot, nodes in cache.items() if nodes and nodes[0].name == name}

    def _shard(self, name: str) -> Shard:
        """The shard of node ``name``, started if new."""
        shard = self._shards.get(name)
        if shard is None:
            shard = self._shards[name] = self._start(name)
        return shard

    def _start(self, name: str) -> Shard:
        host, _, port = name.rpartition(":")
        options = self._options
        client = aioredis.Redis(
            host=host,
            port=int(port),
            client_name=f"fleetcast-gateway:{options.gateway_id}",
            socket_connect_timeout=options.timeout_s,
            **options.node_kwargs,
        )
        echoes = Echoes()
        tag = slot_tag(self._slots(name) or set(range(16384)))
        channel = keys.canary_channel(options.gateway_id, tag)
        listener = ShardListener(
            client,
            self._metrics,
            on_moved=self.moved,
            sink=self._sink,
            channels={channel: echoes.back},
            backoff_max_s=options.backoff_max_s,
            **self._hooks,
        )
        canary = Canary(
            NodePublisher(client),
            listener,
            echoes,
            self._metrics,
            channel=channel,
            interval_s=options.canary_interval_s,
            timeout_s=options.canary_timeout_s,
        )
        shard = Shard(name, client, listener, canary, echoes, tag)
        shard.tasks = [
            asyncio.create_task(listener.run(), name=f"shard-listener-{name}"),
            asyncio.create_task(canary.run(), name=f"shard-canary-{name}"),
        ]
        log.info("shard listener started", shard=name)
        return shard
