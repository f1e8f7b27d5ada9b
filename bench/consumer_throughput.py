"""Events/s one consumer process moves from Kafka to Redis, with its cost split.

    .venv/bin/python -m bench.consumer_throughput [--events 200000] [--batch-max 2000]

A tuning tool for the consumer (``make bench``'s ``consumer`` scenario gives
the headline figure): it starts its own redis-server and Kafka broker (tuned
for throughput), fills the five topics with the demo fleet's realistic mix
(80 % positions; 10 orgs keyed by org, 3 partitions per topic), then starts
``python -m fleetcast.consumer`` from the earliest offset and times the
drain from its first published event to the last. It prints events/s, the
consumer's, Redis' (INFO cpu) and the broker's CPU per event, and how busy
the whole machine was (other work on a shared machine shows there), so it is
clear which side is the limit. Bounded: the drain gives up
after ``--deadline`` seconds.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path

import aiohttp
import orjson
import psutil  # type: ignore[import-untyped]
from aiokafka import AIOKafkaProducer
from redis.asyncio import Redis

from fleetcast.devtools import demo, kafka
from fleetcast.devtools.ports import free_port
from fleetcast.devtools.redis import RedisServer
from fleetcast.protocol import control, events

HANDLED = ("published", "duplicates", "unrouted", "dead_lettered")


async def prefill(bootstrap: str, count: int, orgs: int) -> float:
    """Write ``count`` demo events; returns the producer's events/s."""
    fleet = demo.Fleet(orgs=orgs, units_per_org=250, seed=1)
    values = [
        (events.CATALOG[e["event_type"]], orjson.dumps(e), e["organization_id"].encode())
        for e in itertools.islice(fleet, count)
    ]
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=5, acks=1, max_batch_size=256 * 1024
    )
    await producer.start()
    started = time.monotonic()
    try:
        for topic, value, key in values:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()
    return count / (time.monotonic() - started)


async def handled(session: aiohttp.ClientSession, port: int) -> float:
    async with session.get(f"http://127.0.0.1:{port}/metrics") as response:
        text = await response.text()
    total = 0.0
    for line in text.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in {f"fleetcast_consumer_{h}_total" for h in HANDLED}:
            total += float(line.rsplit(" ", 1)[1])
    return total


async def redis_cpu(url: str) -> float:
    redis = Redis.from_url(url)
    try:
        info = await redis.info("cpu")
    finally:
        await redis.aclose()
    return float(info["used_cpu_sys"]) + float(info["used_cpu_user"])


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def machine_busy_seconds() -> float:
    """CPU time all processes used, summed over cores (everything but idle/iowait)."""
    times = psutil.cpu_times()
    return float(sum(times) - times.idle - getattr(times, "iowait", 0.0))


async def drain(
    port: int,
    pid: int,
    redis_url: str,
    count: int,
    deadline_s: float,
    *,
    also: Mapping[str, int] | None = None,
) -> dict[str, float]:
    """Poll the consumer until ``count`` events are handled; figures over that window.

    ``<name>_cpu_us`` per event for the consumer (``pid``), Redis, the whole
    machine and each process of ``also`` (name -> pid).
    """
    pids = {"consumer": pid, **(also or {})}
    processes = {name: psutil.Process(pid) for name, pid in pids.items()}
    first: dict[str, float] | None = None
    last: dict[str, float] | None = None
    stop_at = time.monotonic() + deadline_s
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < stop_at:
            try:
                done = await handled(session, port)
            except aiohttp.ClientError:  # not listening yet
                await asyncio.sleep(0.1)
                continue
            sample = {name: cpu_seconds(proc) for name, proc in processes.items()}
            sample |= {"at": time.monotonic(), "done": done, "redis": await redis_cpu(redis_url)}
            sample["machine"] = machine_busy_seconds()
            if done > 0 and first is None:
                first = sample
            last = sample if first is not None else None
            if done >= count:
                break
            await asyncio.sleep(0.1)
    if first is None or last is None or last["done"] <= first["done"]:
        raise RuntimeError("the consumer published nothing")
    moved, window = last["done"] - first["done"], last["at"] - first["at"]
    figures = {"handled": last["done"], "window_s": window, "events_per_s": moved / window}
    for name in (*pids, "redis", "machine"):
        figures[f"{name}_cpu_us"] = (last[name] - first[name]) / moved * 1e6
    figures["machine_cores"] = (last["machine"] - first["machine"]) / window
    return figures


def spawn_consumer(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "fleetcast.consumer"], env=env, stdout=out, stderr=out
        )


def read_tail(log: Path) -> str:
    return "consumer log:\n" + log.read_text(errors="replace")[-2000:]


async def main_async(args: argparse.Namespace) -> None:
    with RedisServer() as redis_server, kafka.KafkaBroker.create(fast_start=False) as broker:
        topics = [*events.DEFAULT_TOPICS, events.DEFAULT_DLQ_TOPIC, control.DEFAULT_TOPIC]
        await kafka.create_topics(broker.bootstrap, topics, partitions=args.partitions)
        rate = await prefill(broker.bootstrap, args.events, args.orgs)
        print(f"prefilled {args.events:,} events at {rate:,.0f}/s", flush=True)
        port = free_port()
        env = {
            **os.environ,
            "FLEETCAST_KAFKA_BOOTSTRAP_SERVERS": broker.bootstrap,
            "FLEETCAST_REDIS_URL": redis_server.url,
            "FLEETCAST_KAFKA_AUTO_OFFSET_RESET": "earliest",
            "FLEETCAST_CONSUMER_PORT": str(port),
            "FLEETCAST_BATCH_MAX": str(args.batch_max),
            "FLEETCAST_LOG_LEVEL": "WARNING",
        }
        with tempfile.TemporaryDirectory(prefix="fleetcast-bench-") as tmp:
            log = Path(tmp) / "consumer.log"
            consumer = spawn_consumer(env, log)
            try:
                assert broker.process is not None
                figures = await drain(
                    port,
                    consumer.pid,
                    redis_server.url,
                    args.events,
                    args.deadline,
                    also={"broker": broker.process.pid},
                )
            finally:
                consumer.terminate()
                consumer.wait(30)
            if figures["handled"] < args.events:
                print(read_tail(log), file=sys.stderr)
    print(
        f"consumer: {figures['handled']:,.0f} events in {figures['window_s']:.2f}s = "
        f"{figures['events_per_s']:,.0f} events/s (batch_max {args.batch_max}, "
        f"{args.partitions} partitions/topic, {args.orgs} orgs)\n"
        f"CPU per event: consumer {figures['consumer_cpu_us']:.1f} µs, "
        f"redis {figures['redis_cpu_us']:.1f} µs, broker {figures['broker_cpu_us']:.1f} µs, "
        f"whole machine {figures['machine_cpu_us']:.1f} µs "
        f"({figures['machine_cores']:.2f} of {psutil.cpu_count()} cores busy)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.consumer_throughput", description=__doc__
    )
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--batch-max", type=int, default=2000)
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--orgs", type=int, default=10)
    parser.add_argument("--deadline", type=float, default=180.0, help="seconds the drain may take")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
