"""`make run`: Redis, Kafka, the consumer, one gateway and a demo fleet on 127.0.0.1.

Defaults are DESIGN.md's (gateway :8080, consumer :8081, Kafka :9092, Redis
:6379); every one is overridable with FLEETCAST_* variables, and pointing
FLEETCAST_KAFKA_BOOTSTRAP_SERVERS or FLEETCAST_REDIS_URL at your own servers
skips starting ours. Prints where to connect and a ready-made dev token.
Ctrl-C (or SIGTERM) stops everything, newest first; a child that dies stops
the rest too, with the tail of its log.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Final

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetcast.devtools import demo, kafka, tokens
from fleetcast.devtools.redis import RedisServer
from fleetcast.protocol import events

READY_TIMEOUT_S: Final = 90.0
STOP_TIMEOUT_S: Final = 15.0


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
    #: Where child logs go (git-ignored).
    run_dir: Path = Path(".run")


@dataclass
class Child:
    """One child process and the log it writes."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log_file: IO[bytes]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log_file.close()

    def tail(self, lines: int = 20) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Stack:
    """Everything `make run` started, stopped in reverse order."""

    def __init__(self, settings: RunSettings) -> None:
        self.settings = settings
        self.children: list[Child] = []
        self.redis: RedisServer | None = None
        self.kafka: kafka.KafkaBroker | None = None
        settings.run_dir.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> Child:
        log_path = self.settings.run_dir / f"{name}.log"
        log_file = log_path.open("wb")
        process = subprocess.Popen(
            args,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches us only; we stop children in order
        )
        child = Child(name, process, log_path, log_file)
        self.children.append(child)
        return child

    def dead(self) -> Child | None:
        return next((c for c in self.children if c.process.poll() is not None), None)

    def stop(self) -> None:
        for child in reversed(self.children):
            say(f"stopping {child.name}")
            child.stop()
        if self.kafka is not None:
            say("stopping kafka")
            self.kafka.close()
        if self.redis is not None:
            say("stopping redis")
            self.redis.cleanup()


def say(text: str) -> None:
    print(f"run: {text}", flush=True)


def start_redis(stack: Stack) -> str:
    if stack.settings.redis_url:
        return stack.settings.redis_url
    say(f"starting redis on 127.0.0.1:{stack.settings.redis_port}")
    stack.redis = RedisServer(stack.settings.redis_port).start()
    return stack.redis.url


def start_kafka(stack: Stack) -> str:
    if stack.settings.kafka_bootstrap_servers:
        return stack.settings.kafka_bootstrap_servers
    say(f"starting kafka on 127.0.0.1:{stack.settings.kafka_port}")
    started = time.monotonic()
    stack.kafka = kafka.KafkaBroker.create(port=stack.settings.kafka_port)
    stack.kafka.start()
    topics = [*events.DEFAULT_TOPICS, events.DEFAULT_DLQ_TOPIC]
    stack.kafka.create_topics(topics, partitions=3)
    say(f"kafka ready in {time.monotonic() - started:.1f}s (topics: {', '.join(topics)})")
    return stack.kafka.bootstrap


def wait_ready(stack: Stack, name: str, url: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        if (child := stack.dead()) is not None:
            raise RuntimeError(f"{child.name} exited:\n{child.tail()}")
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


def launch(stack: Stack) -> str:
    """Start everything; returns the banner to print."""
    settings = stack.settings
    secret = settings.jwt_secret or tokens.dev_secret()
    redis_url = start_redis(stack)
    bootstrap = start_kafka(stack)
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


@contextlib.contextmanager
def signals_as_exit() -> Iterator[None]:
    """SIGTERM behaves like Ctrl-C, so both stop everything the same way."""

    def interrupt(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main() -> None:
    stack = Stack(RunSettings())
    status = 0
    with signals_as_exit():
        try:
            print(launch(stack), flush=True)
            while (child := stack.dead()) is None:
                time.sleep(0.5)
            say(f"{child.name} exited with {child.process.returncode}:\n{child.tail()}")
            status = 1
        except KeyboardInterrupt:
            print(flush=True)
        except Exception as exc:  # a start-up failure: say why, then clean up
            say(f"failed: {exc}")
            status = 1
        finally:
            signal.signal(signal.SIGINT, signal.SIG_IGN)  # a second Ctrl-C must not skip cleanup
            stack.stop()
            say("stopped")
    sys.exit(status)


if __name__ == "__main__":
    main()
