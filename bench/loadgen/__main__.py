"""The load generator process: ``python -m bench.loadgen`` (driven by :mod:`bench.loadgen.control`).

Reads one JSON command per line on stdin, answers one JSON line on stdout.
Runs on uvloop, pinned by its parent to a core other than the server's, and
raises its own file descriptor limit so it can hold 10,000+ sockets.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import resource
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import uvloop

from bench import stats
from bench.loadgen import recorder as recording
from bench.loadgen.backoff import Backoff
from bench.loadgen.centrifugo_client import CentrifugoClient
from bench.loadgen.client import Client, ClientSpec, Target

#: Attempts per client when the server refuses for a transient reason.
ATTEMPTS = 5
#: http_503: the gateway's overload guard (admission.py) asks for a retry, as real clients do.
TRANSIENT = (
    "connect_error:rate_limited",
    "connect_error:server_full",
    "http_503",
    "refused",
    "timeout",
)


def raise_fd_limit() -> int:
    """Soft fd limit up to the hard one (10k sockets need 10k descriptors)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


#: The client class of each wire protocol a server under test speaks.
CLIENTS: dict[str, type[Client] | type[CentrifugoClient]] = {
    "socket.io": Client,
    "centrifugo": CentrifugoClient,
}


@dataclasses.dataclass(frozen=True, slots=True)
class Attempts:
    """How a client retries: how often, each attempt's time limit, the wait between."""

    count: int
    timeout_s: float
    backoff: Backoff | None = None

    def retries(self, error: str) -> bool:
        """With a backoff (socket.io-client's rule) any failure is retried, as its clients do."""
        return self.backoff is not None or error.startswith(TRANSIENT)

    def wait_s(self, failures: int, rng: random.Random) -> float:
        if self.backoff is None:
            return 0.2 * (failures + 1)
        return self.backoff.delay(failures, rng)


def _factory(client: Client | CentrifugoClient) -> Callable[[], Client | CentrifugoClient]:
    return lambda: client


class Worker:
    """Owns every client of this process and answers the controller's commands."""

    def __init__(self) -> None:
        self.recorder = recording.Recorder()
        self.clients: list[Client | CentrifugoClient] = []
        self._rng = random.Random(1)

    async def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "connect":
            return await self.connect(cmd)
        if op == "arm":
            self.recorder.arm(int(cmd["nseq"]), int(cmd["phase"]))
            return {"armed": self.recorder.nseq}
        if op == "progress":
            return self.progress()
        if op == "collect":
            return self.collect(cmd)
        if op == "close":
            return await self.close()
        raise ValueError(f"unknown op {op!r}")

    async def connect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Open every client of ``cmd``; with ``backoff``, failed attempts wait as
        socket.io-client's do (see :mod:`bench.loadgen.backoff`), else 0.2 s more each."""
        target = Target(cmd["host"], int(cmd["port"]), cmd["path"])
        kind = CLIENTS[cmd.get("protocol", "socket.io")]
        specs = [ClientSpec.from_json(doc) for doc in cmd["clients"]]
        gate = asyncio.Semaphore(int(cmd.get("concurrency", 100)))
        rule = Backoff(**cmd["backoff"]) if cmd.get("backoff") else None
        attempts = Attempts(
            int(cmd.get("attempts", ATTEMPTS)), float(cmd.get("timeout", 30.0)), rule
        )
        base = len(self.clients)
        self.recorder.size(base + len(specs))
        started = time.monotonic()
        ready_s: list[float] = []
        retried: dict[str, int] = {}

        async def one(offset: int, spec: ClientSpec) -> str | None:
            async with gate:
                error = await self._open(kind, base + offset, spec, target, attempts, retried)
            if error is None:
                ready_s.append(time.monotonic() - started)
            return error

        results = await asyncio.gather(*(one(i, s) for i, s in enumerate(specs)))
        errors: dict[str, int] = {}
        for error in results:
            if error is not None:
                errors[error] = errors.get(error, 0) + 1
        return {
            "connected": sum(e is None for e in results),
            "failed": sum(errors.values()),
            "errors": errors,
            "retried": retried,
            "elapsed_s": time.monotonic() - started,
            "ready_s": sorted(ready_s) if cmd.get("times") else [],
        }

    async def _open(
        self,
        kind: type[Client] | type[CentrifugoClient],
        index: int,
        spec: ClientSpec,
        target: Target,
        attempts: Attempts,
        retried: dict[str, int],
    ) -> str | None:
        """One client, retried on transient errors (each retried one counted in ``retried``)."""
        loop = asyncio.get_running_loop()
        error: str | None = None
        for attempt in range(attempts.count):
            client = kind(index, spec, target, self.recorder)
            try:
                async with asyncio.timeout(attempts.timeout_s):
                    await loop.create_connection(_factory(client), target.host, target.port)
                    await client.ready
            except TimeoutError:
                error = "timeout"
                client.close()
            except ConnectionRefusedError:
                error = "refused"
            except (ConnectionError, OSError) as exc:
                error = client.error or str(exc) or type(exc).__name__
            else:
                self._place(index, client)
                return None
            if not attempts.retries(error) or attempt == attempts.count - 1:
                break
            retried[error] = retried.get(error, 0) + 1
            await asyncio.sleep(attempts.wait_s(attempt, self._rng))
        return error

    def _place(self, index: int, client: Client | CentrifugoClient) -> None:
        while len(self.clients) <= index:
            self.clients.append(client)
        self.clients[index] = client

    def progress(self) -> dict[str, Any]:
        rec = self.recorder
        return {
            "deliveries": rec.deliveries,
            "first_ns": rec.first_ns,
            "last_ns": rec.last_ns,
            "closed": len(rec.closed_clients),
        }

    def collect(self, cmd: dict[str, Any]) -> dict[str, Any]:
        """Account for the armed phase; latencies go to ``raw`` (``.npz``) when given."""
        rec = self.recorder
        rec.armed = False
        names: list[str] = cmd["category_names"]
        categories = np.asarray(cmd["categories"], dtype=np.int64)
        clients = [c.spec.rooms for c in self.clients]
        acc = recording.account(
            rec.counts[: len(clients)],
            clients,
            cmd["event_rooms"],
            cmd["categories"],
            names,
            per_channel=bool(cmd.get("per_channel")),
        )
        seqs = np.frombuffer(rec.seqs, dtype=np.int64)
        lat_us = np.frombuffer(rec.latencies_ns, dtype=np.int64) / 1000.0
        if cmd.get("raw"):
            Path(cmd["raw"]).parent.mkdir(parents=True, exist_ok=True)
            np.savez_compressed(cmd["raw"], seq=seqs, latency_us=lat_us)
        latency = {"all": stats.summarize(lat_us).as_dict()}
        for number, name in enumerate(names):
            picked = lat_us[categories[seqs] == number] if len(seqs) else lat_us
            latency[name] = stats.summarize(picked).as_dict()
        return {
            "accounting": dataclasses.asdict(acc),
            "latency_us": latency,
            "stray": rec.stray,
            "copies": rec.copies,
            "first_ns": rec.first_ns,
            "last_ns": rec.last_ns,
            "closes": dict(rec.closes),
            "closed_clients": len(rec.closed_clients),
        }

    async def close(self) -> dict[str, Any]:
        for client in self.clients:
            client.close()
        count = len(self.clients)
        self.clients = []
        self.recorder = recording.Recorder()
        await asyncio.sleep(0.2)
        return {"closed": count}


async def serve() -> None:
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(limit=256 * 1024 * 1024)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    worker = Worker()
    while line := await reader.readline():
        cmd = orjson.loads(line)
        if cmd["op"] == "exit":
            break
        try:
            reply = {"ok": True, **await worker.handle(cmd)}
        except Exception as exc:  # the controller reports it; the process stays up
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}"}
        sys.stdout.buffer.write(orjson.dumps(reply) + b"\n")
        sys.stdout.buffer.flush()
    await worker.close()


def main() -> None:
    raise_fd_limit()
    uvloop.run(serve())


if __name__ == "__main__":
    main()
