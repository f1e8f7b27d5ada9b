"""The controller's handle on a load generator process.

Spawns ``python -m bench.loadgen`` pinned to its cores and speaks its
line-delimited JSON commands. Every wait is bounded: a command that gets no
answer within its timeout raises, and :meth:`LoadGen.stop` always ends the
process it started.
"""

from __future__ import annotations

import asyncio
import dataclasses
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from bench import events, procs
from bench.loadgen.backoff import Backoff
from bench.loadgen.client import ClientSpec


class LoadGenError(RuntimeError):
    """The load generator refused a command or stopped answering."""


@dataclass(frozen=True, slots=True)
class ConnectResult:
    connected: int
    failed: int
    errors: dict[str, int]
    elapsed_s: float
    #: Failed attempts that were retried, by error (refusals, timeouts, 503s).
    retried: dict[str, int] = dataclasses.field(default_factory=dict)
    #: Seconds from the start until each client was ready, sorted (when asked for).
    ready_s: list[float] = dataclasses.field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Progress:
    deliveries: int
    first_ns: int
    last_ns: int
    closed: int


class LoadGen:
    """One load generator process (start with :meth:`start`, end with :meth:`stop`)."""

    def __init__(self, cpus: Sequence[int] | None) -> None:
        self.cpus = cpus
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    async def start(self) -> None:
        argv = procs.pinned([sys.executable, "-m", "bench.loadgen"], self.cpus)
        self.proc = await asyncio.create_subprocess_exec(
            *argv,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=64 * 1024 * 1024,
        )

    async def call(self, cmd: dict[str, Any], within_s: float = 30.0) -> dict[str, Any]:
        proc = self.proc
        if proc is None or proc.stdin is None or proc.stdout is None:
            raise LoadGenError("load generator not started")
        proc.stdin.write(orjson.dumps(cmd) + b"\n")
        await proc.stdin.drain()
        try:
            line = await asyncio.wait_for(proc.stdout.readline(), within_s)
        except TimeoutError:
            raise LoadGenError(f"no answer to {cmd['op']} within {within_s:.0f}s") from None
        if not line:
            raise LoadGenError(f"load generator exited (code {proc.returncode}) during {cmd['op']}")
        reply: dict[str, Any] = orjson.loads(line)
        if not reply.pop("ok"):
            raise LoadGenError(f"{cmd['op']}: {reply.get('error')}")
        return reply

    async def connect(
        self,
        host: str,
        port: int,
        path: str,
        clients: Sequence[ClientSpec],
        *,
        concurrency: int = 100,
        within_s: float = 120.0,
        protocol: str = "socket.io",
        backoff: Backoff | None = None,
        attempts: int | None = None,
        times: bool = False,
    ) -> ConnectResult:
        """Connect and subscribe ``clients``; returns once every one is ready or failed.

        ``protocol`` is the server's wire protocol (``socket.io`` or ``centrifugo``);
        ``backoff`` the wait between a client's failed attempts, any failure then
        retried as socket.io-client does (default: transient ones only, 0.2 s more
        each), ``attempts`` their number; ``times``: return every client's time to ready.
        """
        options: dict[str, Any] = {"times": times}
        if backoff is not None:
            options["backoff"] = backoff.as_dict()
        if attempts is not None:
            options["attempts"] = attempts
        reply = await self.call(
            {
                **options,
                "op": "connect",
                "protocol": protocol,
                "host": host,
                "port": port,
                "path": path,
                "concurrency": concurrency,
                "timeout": min(30.0, within_s),
                "clients": [
                    {"token": c.token, "subscribe": c.subscribe, "rooms": c.rooms} for c in clients
                ],
            },
            within_s=within_s,
        )
        return ConnectResult(
            reply["connected"],
            reply["failed"],
            reply["errors"],
            reply["elapsed_s"],
            reply.get("retried", {}),
            reply.get("ready_s", []),
        )

    async def arm(self, nseq: int) -> None:
        """Count the ``nseq`` events of a new phase (see :func:`bench.events.new_phase`)."""
        await self.call({"op": "arm", "nseq": nseq, "phase": events.new_phase()})

    async def progress(self) -> Progress:
        r = await self.call({"op": "progress"})
        return Progress(r["deliveries"], r["first_ns"], r["last_ns"], r["closed"])

    async def wait_for(
        self, deliveries: int, *, deadline_s: float, idle_s: float = 3.0
    ) -> Progress:
        """Poll until ``deliveries`` arrived, nothing arrived for ``idle_s``, or the deadline."""
        end = time.monotonic() + deadline_s
        seen, since = -1, time.monotonic()
        while True:
            now_progress = await self.progress()
            now = time.monotonic()
            if now_progress.deliveries >= deliveries or now > end:
                return now_progress
            if now_progress.deliveries != seen:
                seen, since = now_progress.deliveries, now
            elif now - since > idle_s:
                return now_progress
            await asyncio.sleep(0.02)

    async def collect(
        self,
        event_rooms: Sequence[Sequence[str]],
        categories: Sequence[int],
        category_names: Sequence[str],
        raw: str | None = None,
        *,
        per_channel: bool = False,
    ) -> dict[str, Any]:
        """Account for the armed phase (``per_channel``: see :func:`recorder.account`)."""
        return await self.call(
            {
                "op": "collect",
                "event_rooms": event_rooms,
                "categories": categories,
                "category_names": category_names,
                "raw": raw,
                "per_channel": per_channel,
            },
            within_s=120.0,
        )

    async def close_all(self) -> None:
        await self.call({"op": "close"}, within_s=60.0)

    async def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        self.proc = None
        if proc.returncode is None and proc.stdin is not None:
            try:
                proc.stdin.write(b'{"op":"exit"}\n')
                await proc.stdin.drain()
                await asyncio.wait_for(proc.wait(), 10)
            except (TimeoutError, ConnectionError):
                pass
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
