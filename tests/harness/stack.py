"""The fault suite's stack: real processes on loopback, counting clients, steady traffic.

One :class:`FaultStack` is one redis-server of its own (so it may be killed and
restarted), topics of its own on a Kafka broker it is given (the session's in
pytest), one consumer process (``python -m fleetcast.consumer``), two gateway
processes (``python -m fleetcast.gateway``, configured by FLEETCAST_*
variables only), a :class:`tests.harness.traffic.Producer` and counting
clients spread over both gateways. The fault actions (:meth:`FaultStack.kill_pubsub`
and the rest) do to these processes what an outage does; :class:`ReadyWatch`
samples every process's /ready meanwhile.

Everything the stack starts it stops in :meth:`FaultStack.close`, whatever
happened; every wait is bounded. Blocking calls (restarting a server) run in a
thread so the clients keep reading meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import aiohttp
from aiokafka import AIOKafkaProducer

from fleetcast.devtools import kafka
from fleetcast.devtools.redis import RedisServer
from fleetcast.protocol import rooms
from tests.harness import counting
from tests.harness.counting_client import ClientSpec, CountingClient
from tests.harness.gateway_process import SECRET, GatewayProcess
from tests.harness.kafka import (
    ConsumerProcess,
    KafkaTopics,
    consumer_settings,
    scrape,
    settings_env,
)
from tests.harness.traffic import Mix, Model, Producer

PRIME_WITHIN_S: Final = 20.0
READY_PERIOD_S: Final = 0.2
#: Gateway drain on SIGTERM (seconds): clients are sent away over 40 % of it.
DRAIN_SECONDS: Final = 4.0


@dataclass(frozen=True, slots=True)
class StackOptions:
    rate: float = 200.0
    clients: int = 10
    #: Configure the consumer with a dead-letter topic that does not exist.
    dlq_missing: bool = False
    seed: int = 1
    #: Longest the steady traffic may run, whatever happens (seconds).
    max_traffic_s: float = 300.0


def client_specs(model: Model, count: int) -> list[ClientSpec]:
    """Dispatchers, supervisors, field units and viewers over every org, on both gateways."""
    specs = []
    for i in range(count):
        org, asset = model.orgs[i % len(model.orgs)], model.assets[i % len(model.assets)]
        other = model.assets[(i + 5) % len(model.assets)]
        channel = model.channels[i % len(model.channels)]
        incident = model.incidents[i % len(model.incidents)]
        role = ("dispatcher", "supervisor", "field_unit", "dispatcher", "viewer")[i % 5]
        extra: tuple[str, ...] = {
            "dispatcher": (f"channel:{channel}", f"incident:{incident}", f"asset:{asset}",
                           f"asset:{other}"),
            "supervisor": (f"channel:{channel}", f"incident:{incident}"),
            "field_unit": (f"channel:{channel}", f"asset:{asset}"),
            "viewer": (),
        }[role]  # fmt: skip
        lists = {"channels": (channel,), "assets": (asset,)} if role == "field_unit" else {}
        specs.append(
            ClientSpec(f"c{i}-{role}", model.crew(asset), org, (role,), extra, i % 2, **lists)
        )
    return specs


def false_seconds(samples: Sequence[tuple[float, bool]]) -> float:
    """Time spent not ready: each false sample counts until the next sample."""
    return sum(b[0] - a[0] for a, b in itertools.pairwise(samples) if not a[1])


class ReadyWatch:
    """Samples /ready of named processes every READY_PERIOD_S (a task it owns)."""

    def __init__(self, urls: Callable[[], Mapping[str, str]]) -> None:
        self._urls = urls
        self.samples: dict[str, list[tuple[float, bool]]] = {}
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="ready-watch")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        timeout = aiohttp.ClientTimeout(total=READY_PERIOD_S * 2)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            while True:
                for name, url in self._urls().items():
                    ok = False
                    with contextlib.suppress(aiohttp.ClientError, TimeoutError, OSError):
                        async with http.get(f"{url}/ready") as response:
                            ok = response.status == 200
                    self.samples.setdefault(name, []).append((time.monotonic(), ok))
                await asyncio.sleep(READY_PERIOD_S)

    def not_ready_s(self, since: float) -> dict[str, float]:
        return {
            name: round(false_seconds([s for s in samples if s[0] >= since]), 1)
            for name, samples in self.samples.items()
        }


@dataclass
class FaultStack:
    """See the module docstring. ``async with FaultStack(...)`` starts and primes it."""

    broker: kafka.KafkaBroker
    log_dir: Path
    name: str
    options: StackOptions = field(default_factory=StackOptions)
    model: Model = field(default_factory=Model)
    redis: RedisServer = field(default_factory=RedisServer)
    consumers: list[ConsumerProcess] = field(default_factory=list)
    gateways: list[GatewayProcess] = field(default_factory=list)
    clients: list[CountingClient] = field(default_factory=list)
    producer: Producer | None = None
    watch: ReadyWatch | None = None
    #: Undoes what :meth:`start` did, last started first, whatever fails on the way.
    _cleanup: contextlib.AsyncExitStack = field(default_factory=contextlib.AsyncExitStack)

    @property
    def topics(self) -> KafkaTopics:
        return KafkaTopics(self.broker.bootstrap, self.name)

    @property
    def consumer(self) -> ConsumerProcess:
        return self.consumers[-1]

    @property
    def records(self) -> list[counting.Record]:
        return [client.record for client in self.clients]

    async def __aenter__(self) -> FaultStack:
        try:
            await self.start()
        except BaseException:
            await self.close()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    async def start(self) -> None:
        cleanup = self._cleanup
        cleanup.push_async_callback(asyncio.to_thread, self.redis.cleanup)
        await asyncio.to_thread(self.redis.start)
        topics = self.topics
        wanted = [*topics.events, topics.control]
        wanted += [] if self.options.dlq_missing else [topics.dlq]
        await kafka.create_topics(self.broker.bootstrap, wanted, partitions=3)
        cleanup.callback(self._stop_processes)
        self.consumers.append(ConsumerProcess(self._consumer_env(), self._log("consumer")))
        self.gateways = [GatewayProcess(self._gateway_env(i), self.log_dir) for i in range(2)]
        for gateway in self.gateways:
            gateway.start()
        await asyncio.gather(self.consumer.start(), *(g.wait_ready() for g in self.gateways))
        self.watch = ReadyWatch(self._ready_urls)
        cleanup.push_async_callback(self.watch.stop)
        self.watch.start()
        urls = [gateway.url for gateway in self.gateways]
        specs = client_specs(self.model, self.options.clients)
        self.clients = [CountingClient(spec, urls) for spec in specs]
        for client in self.clients:
            cleanup.push_async_callback(client.close)
        await asyncio.gather(*(client.start() for client in self.clients))
        mix = Mix(self.model, run=self.name, seed=self.options.seed)
        self.producer = Producer(
            self.broker.bootstrap, topics.for_type, mix,
            rate=self.options.rate, max_s=self.options.max_traffic_s,
        )  # fmt: skip
        cleanup.push_async_callback(self.producer.stop, 10.0)
        await self.producer.start()
        await self.prime()

    def _stop_processes(self) -> None:
        """Kill every consumer (replacements too) and gateway still running."""
        for consumer in self.consumers:
            consumer.kill()
        for gateway in self.gateways:
            gateway.stop()

    def _log(self, what: str) -> Path:
        return self.log_dir / f"{self.name}-{what}.log"

    def _consumer_env(self) -> dict[str, str]:
        overrides: dict[str, Any] = {}
        if self.options.dlq_missing:
            overrides["kafka_dlq_topic"] = self.topics.topic("fleet.dlq-missing")
        return settings_env(consumer_settings(self.topics, self.redis.url, **overrides))

    def _gateway_env(self, index: int) -> dict[str, str]:
        return {
            "FLEETCAST_REDIS_URL": self.redis.url,
            "FLEETCAST_JWT_SECRET": SECRET,
            "FLEETCAST_GATEWAY_ID": f"{self.name}-gw{index}",
            "FLEETCAST_CONSOLE_ENABLED": "false",
            "FLEETCAST_DRAIN_SECONDS": str(DRAIN_SECONDS),
        }

    def _ready_urls(self) -> dict[str, str]:
        urls = {f"gateway {i}": g.url for i, g in enumerate(self.gateways)}
        urls["consumer"] = f"http://127.0.0.1:{self.consumer.port}"
        return urls

    async def prime(self) -> None:
        """Until every client holds an offset in every room: one single-room event per room."""
        assert self.producer is not None
        deadline = time.monotonic() + PRIME_WITHIN_S
        while time.monotonic() < deadline:
            missing = {
                client.spec.full_name(room) for client in self.clients
                for room in client.missing_offsets()
            }  # fmt: skip
            if not missing:
                return
            mix = self.producer.mix
            await self.producer.send(
                mix.prime(rooms.parse_room(name), time.time()) for name in sorted(missing)
            )
            await asyncio.sleep(1.0)
        left = {c.spec.name: c.missing_offsets() for c in self.clients if c.missing_offsets()}
        raise AssertionError(f"clients got no event of these rooms in {PRIME_WITHIN_S}s: {left}")

    # --- faults ------------------------------------------------------------------------

    async def kill_pubsub(self) -> str:
        """``redis-cli CLIENT KILL TYPE pubsub``: every gateway's pub/sub connection."""
        out = await asyncio.to_thread(
            subprocess.run,
            ["redis-cli", "-p", str(self.redis.port), "CLIENT", "KILL", "TYPE", "pubsub"],
            capture_output=True, text=True, check=True, timeout=10,
        )  # fmt: skip
        return f"killed {out.stdout.strip()} pub/sub connections"

    async def restart_redis(self, down_s: float) -> str:
        """Stop redis-server, wait, start it again on the same port: empty (no persistence)."""
        await asyncio.to_thread(self.redis.stop)
        await asyncio.sleep(down_s)
        await asyncio.to_thread(self.redis.start)
        return f"redis-server down {down_s:g} s, back empty"

    async def pause_kafka(self, paused_s: float) -> str:
        """SIGSTOP the broker's JVM, SIGCONT it ``paused_s`` later (a long GC, a frozen VM)."""
        assert self.broker.process is not None
        pid = self.broker.process.pid
        try:
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(paused_s)
        finally:  # also when the test is cancelled: the broker is the session's
            os.kill(pid, signal.SIGCONT)
        return f"broker paused {paused_s:g} s"

    async def restart_kafka(self) -> str:
        started = time.monotonic()
        await asyncio.to_thread(self.broker.restart)
        return f"broker restarted (controlled shutdown + start: {time.monotonic() - started:.1f} s)"

    async def replace_consumer(self, sig: signal.Signals) -> str:
        """Signal the consumer, wait for it to exit (bounded), start a new one."""
        old = self.consumer
        assert old.process is not None
        old.process.send_signal(sig)
        code = await asyncio.to_thread(old.process.wait, 30)
        self.consumers.append(ConsumerProcess(old.env, old.log_path))
        self.consumer.spawn()
        return f"consumer {sig.name} (exit {code}), a new one started"

    async def signal_gateway(self, index: int, sig: signal.Signals) -> str:
        proc = self.gateways[index].proc
        assert proc is not None
        proc.send_signal(sig)
        return f"gateway {index} {sig.name}"

    async def send_raw(self, event_type: str, value: bytes, org: str) -> None:
        """One record as is, from a producer of its own (never batched with the traffic)."""
        producer = AIOKafkaProducer(
            bootstrap_servers=self.broker.bootstrap, acks="all", max_request_size=2 * 1024 * 1024
        )
        await producer.start()
        try:
            await producer.send_and_wait(self.topics.for_type(event_type), value, key=org.encode())
        finally:
            await producer.stop()

    # --- the run's end -----------------------------------------------------------------

    async def stop_traffic(self) -> None:
        """No more steady traffic; returns when Kafka answered every send (bounded)."""
        assert self.producer is not None
        await self.producer.stop()

    async def until_every_client_has_fresh(self, since: float, within_s: float) -> None:
        """While traffic flows: until each client got an event handed to Kafka after ``since``."""
        assert self.producer is not None
        deadline, waiting = time.monotonic() + within_s, list(self.records)
        while waiting and time.monotonic() < deadline:
            confirmed = self.producer.ledger.confirmed
            waiting = [r for r in waiting if counting.first_fresh(confirmed, r, since) is None]
            await asyncio.sleep(0.2)

    async def settle(self, quiet_s: float, within_s: float) -> None:
        """After the traffic: until nothing is outstanding, or nothing arrived for ``quiet_s``."""
        assert self.producer is not None
        deadline, last_change, last_count = time.monotonic() + within_s, time.monotonic(), -1
        while time.monotonic() < deadline:
            if counting.outstanding(self.producer.ledger.confirmed, self.records) == 0:
                return
            count = sum(len(copies) for r in self.records for copies in r.received.values())
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > quiet_s:
                return
            await asyncio.sleep(0.5)

    async def metrics(self) -> dict[str, dict[str, float]]:
        """/metrics of every process still answering, by name."""
        ports = {f"gateway {i}": g.port for i, g in enumerate(self.gateways)}
        ports["consumer"] = self.consumer.port
        out = {}
        for name, port in ports.items():
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with asyncio.timeout(5):
                    out[name] = await scrape(port)
        return out

    def exited(self) -> list[str]:
        """Names of the processes that are not running (killed, or replaced)."""
        named = [(f"gateway {i}", g.proc) for i, g in enumerate(self.gateways)]
        named += [(f"consumer #{i + 1}", c.process) for i, c in enumerate(self.consumers)]
        return [name for name, proc in named if proc is None or proc.poll() is not None]

    def logs(self, lines: int = 20) -> str:
        """The tail of each process's log, for a failure message."""
        parts = [f"--- consumer\n{self.consumer.log_tail(lines)}"]
        for i, gateway in enumerate(self.gateways):
            tail = "\n".join(gateway.log().splitlines()[-lines:])
            parts.append(f"--- gateway {i}\n{tail}")
        return "\n".join(parts)

    async def close(self) -> None:
        await self._cleanup.aclose()
