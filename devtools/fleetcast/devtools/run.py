"""`make run`: Redis, Kafka, the consumer, one gateway and a demo fleet on 127.0.0.1.

Defaults are DESIGN.md's (gateway :8080, consumer :8081, Kafka :9092, Redis
:6379); every one is overridable with FLEETCAST_* variables, and pointing
FLEETCAST_KAFKA_BOOTSTRAP_SERVERS or FLEETCAST_REDIS_URL at your own servers
skips starting ours. Prints where to connect and a ready-made dev token.

Nothing it starts outlives it. Ctrl-C, SIGTERM (once or twice, to it or to
its process group, as make forwards it) and SIGHUP (its terminal closed) stop
everything, newest first, within bounded time (:mod:`fleetcast.devtools.stack`);
a child that dies stops the rest too, with the tail of its log; and if the
runner itself is SIGKILLed, the kernel kills every child with it
(:mod:`fleetcast.devtools.lifetime`). Temp dirs such a kill leaves behind are
swept by the next run (:mod:`fleetcast.devtools.scratch`), which also checks
that its ports are free before it starts anything.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Final

from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetcast.devtools import demo, kafka, lifetime, redis, scratch, tokens
from fleetcast.devtools.stack import Console, Stack
from fleetcast.protocol import control, events

READY_TIMEOUT_S: Final = 90.0


class RunSettings(BaseSettings):
    """What `make run` starts, and where (environment prefix FLEETCAST_)."""

    model_config = SettingsConfigDict(env_prefix="FLEETCAST_", extra="ignore")

    #: Gateway address (Socket.IO, console, /health, /metrics).
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=1, le=65535)
    #: Consumer's /health, /ready, /metrics.
    consumer_port: int = Field(default=8081, ge=1, le=65535)
    #: Port of the Kafka broker started here; ignored with kafka_bootstrap_servers.
    kafka_port: int = Field(default=9092, ge=1, le=65535)
    #: Use this Kafka instead of starting one (topics must exist there).
    kafka_bootstrap_servers: str | None = None
    #: Port of the redis-server started here; ignored with redis_url.
    redis_port: int = Field(default=6379, ge=1, le=65535)
    #: Use this Redis instead of starting one.
    redis_url: str | None = None
    #: The gateway's HS256 secret; a random dev secret is made (and printed) if unset.
    jwt_secret: str | None = Field(default=None, repr=False)
    #: Demo fleet: events per second, organizations, units per organization.
    demo_rate: float = Field(default=50.0, gt=0)
    demo_orgs: int = Field(default=3, ge=1, le=50)
    demo_units: int = Field(default=20, ge=1, le=5000)
    #: Where child logs, runner.log and pids.json go (git-ignored).
    run_dir: Path = Path(".run")
    #: Seconds a service (demo, gateway, consumer) gets after SIGTERM before SIGKILL;
    #: the gateway's drain (10 s) and the consumer's batch in hand (10 s) fit in 15 s.
    stop_grace_s: float = Field(default=15.0, gt=0)


def port_in_use(host: str, port: int) -> bool:
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def preflight(settings: RunSettings, console: Console) -> None:
    """Sweep what killed runs left in the temp folder; refuse to start on busy ports."""
    removed = scratch.sweep((kafka.DIR_PREFIX, redis.DIR_PREFIX))
    if removed:
        console.say(f"removed {len(removed)} temp dir(s) of killed runs")
    wanted = {"FLEETCAST_PORT": (settings.host, settings.port)}
    wanted["FLEETCAST_CONSUMER_PORT"] = ("127.0.0.1", settings.consumer_port)
    if not settings.kafka_bootstrap_servers:
        wanted["FLEETCAST_KAFKA_PORT"] = ("127.0.0.1", settings.kafka_port)
    if not settings.redis_url:
        wanted["FLEETCAST_REDIS_PORT"] = ("127.0.0.1", settings.redis_port)
    busy = [f"{name}={port}" for name, (host, port) in wanted.items() if port_in_use(host, port)]
    if busy:
        raise RuntimeError(
            f"port(s) in use: {', '.join(busy)} (another make run? see `ss -ltnp`); "
            "stop it, or choose other ports with these variables"
        )


def start_redis(stack: Stack, settings: RunSettings) -> str:
    if settings.redis_url:
        return settings.redis_url
    stack.console.say(f"starting redis on 127.0.0.1:{settings.redis_port}")
    stack.redis = redis.RedisServer(settings.redis_port, die_with_parent=True)
    stack.redis.start()
    stack.write_pids()
    return stack.redis.url


def start_kafka(stack: Stack, settings: RunSettings) -> str:
    if settings.kafka_bootstrap_servers:
        return settings.kafka_bootstrap_servers
    stack.console.say(f"starting kafka on 127.0.0.1:{settings.kafka_port}")
    started = time.monotonic()
    with lifetime.critical():  # its temp dir is made here: kept, or not made
        stack.kafka = kafka.KafkaBroker.create(
            port=settings.kafka_port,
            die_with_parent=True,
            avoid={settings.port, settings.consumer_port, settings.redis_port},
        )
    stack.kafka.start()
    stack.write_pids()
    topics = [*events.DEFAULT_TOPICS, events.DEFAULT_DLQ_TOPIC, control.DEFAULT_TOPIC]
    stack.kafka.create_topics(topics, partitions=3)
    took = time.monotonic() - started
    stack.console.say(f"kafka ready in {took:.1f}s (topics: {', '.join(topics)})")
    return stack.kafka.bootstrap


def wait_ready(stack: Stack, name: str, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if (dead := stack.dead()) is not None:
            raise RuntimeError(f"{dead} exited{tail(stack, dead)}")
        with (
            contextlib.suppress(OSError, urllib.error.URLError),
            urllib.request.urlopen(url, timeout=1) as response,  # noqa: S310 (loopback URL)
        ):
            if response.status == 200:
                return
        time.sleep(0.2)
    raise RuntimeError(f"{name} not ready at {url} after {READY_TIMEOUT_S:.0f}s")


def banner(settings: RunSettings, secret: str, generated: bool, token: str, org: str) -> str:
    base = f"http://{settings.host}:{settings.port}"
    client = Path(sys.executable).with_name("fleetcast-client")
    lines = [
        "",
        "fleetcast is running",
        f"  console     {base}/?token={token}",
        f"  socket.io   {base}  path /ws",
        f"  consumer    http://127.0.0.1:{settings.consumer_port}/metrics",
        f"  logs        {settings.run_dir}/",
        f"  jwt secret  {f'{secret} (dev, generated)' if generated else '(FLEETCAST_JWT_SECRET)'}",
        f"  token       dispatcher of {org}, valid 1 h:",
        f"  {token}",
        f"  try         {client} --url {base} --token <token> --room fleet",
        "Ctrl-C stops everything.",
    ]
    return "\n".join(lines)


def tail(stack: Stack, name: str) -> str:
    child = next((c for c in stack.children if c.name == name), None)
    return "" if child is None else f":\n{child.tail()}"


def launch(stack: Stack, settings: RunSettings) -> str:
    """Start everything; returns the banner to print."""
    secret = settings.jwt_secret or tokens.dev_secret()
    redis_url = start_redis(stack, settings)
    bootstrap = start_kafka(stack, settings)
    python = sys.executable
    common = {"FLEETCAST_REDIS_URL": redis_url, "FLEETCAST_KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    stack.spawn(
        "consumer",
        [python, "-m", "fleetcast.consumer"],
        {
            **common,
            "FLEETCAST_CONSUMER_PORT": str(settings.consumer_port),
            "FLEETCAST_KAFKA_AUTO_OFFSET_RESET": "earliest",
        },
    )
    stack.spawn(
        "gateway",
        [python, "-m", "fleetcast.gateway"],
        {
            **common,
            "FLEETCAST_HOST": settings.host,
            "FLEETCAST_PORT": str(settings.port),
            "FLEETCAST_JWT_SECRET": secret,
        },
    )
    wait_ready(stack, "consumer", f"http://127.0.0.1:{settings.consumer_port}/ready")
    wait_ready(stack, "gateway", f"http://{settings.host}:{settings.port}/ready")
    fleet_args = ["--rate", str(settings.demo_rate), "--orgs", str(settings.demo_orgs)]
    fleet_args += ["--units", str(settings.demo_units), "--bootstrap", bootstrap]
    stack.spawn("demo", [python, "-m", "fleetcast.devtools.demo", *fleet_args], {})
    org = demo.Fleet(settings.demo_orgs, 1).orgs[0].org_id
    token = tokens.mint(secret, org=org, roles=["dispatcher"])
    return banner(settings, secret, settings.jwt_secret is None, token, org)


def watch(stack: Stack) -> None:
    """Until a process exits on its own (the stop signals raise out of here)."""
    while (dead := stack.dead()) is None:
        time.sleep(0.5)
    raise RuntimeError(f"{dead} exited{tail(stack, dead)}")


def main() -> None:
    with lifetime.Interrupts().installed() as interrupts:  # first: no signal is lost
        status = run(interrupts, load_settings())
    sys.exit(status)


def load_settings() -> RunSettings:
    """Settings from the environment, or exit 2 naming each bad variable."""
    try:
        return RunSettings()
    except ValidationError as exc:
        lines = [
            f"  FLEETCAST_{'_'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors()
        ]
        print("make run: invalid configuration\n" + "\n".join(lines), file=sys.stderr)
        raise SystemExit(2) from None


def run(interrupts: lifetime.Interrupts, settings: RunSettings) -> int:
    """Start, watch, stop; the exit status (1 when a start failed or a child died)."""
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    console = Console(settings.run_dir / "runner.log")
    stack = Stack(settings.run_dir, console, settings.stop_grace_s)
    status = 0
    try:
        with interrupts.armed():
            preflight(settings, console)
            console.show(launch(stack, settings))
            console.say(f"running: console on http://{settings.host}:{settings.port}/")
            watch(stack)
    except lifetime.Interrupted as stop:
        console.say(f"{stop.signal_name}: stopping everything")
    except Exception as exc:  # a failed start or a dead child: say why, then clean up
        console.say(f"failed: {exc}")
        status = 1
    started = time.monotonic()
    stack.stop()  # not armed: further signals are only counted
    later = interrupts.received[1:]
    ignored = f" (then also got {', '.join(later)})" if later else ""
    console.say(f"stopped in {time.monotonic() - started:.1f}s{ignored}")
    console.close()
    return status


if __name__ == "__main__":
    main()
