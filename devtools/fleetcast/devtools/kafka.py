"""A real single-node Apache Kafka broker (KRaft) for tests, benchmarks and `make run`.

The broker runs from the jars ``tools/kafka/fetch.sh`` caches from Maven Central:
one JVM that is both controller and broker, on 127.0.0.1 only, with its data in
a folder of its own. ``start`` formats the folder the first time, so ``stop``
then ``start`` again is a broker restart on the same port with the same data,
which is what the fault tests need.

Start-up dominates test time, so the JVM is tuned for it (C1 only, serial GC,
small heap) unless ``fast_start=False`` asks for a broker tuned for throughput,
and each JVM (storage format, broker) loads its classes from a class-data
sharing archive that its first run leaves in the jar cache (about a third off
the start-up time).

A data dir of its own is marked (:mod:`fleetcast.devtools.scratch`), so the
dir of a run killed before its cleanup is swept by a later run;
``die_with_parent=True`` (`make run`) has the JVM SIGKILLed with its parent.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import logging
import os
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Callable, Collection, Coroutine, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final, TypeVar

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from fleetcast.devtools import lifetime, scratch
from fleetcast.devtools.ports import free_port

log = logging.getLogger(__name__)
T = TypeVar("T")

REPO = Path(__file__).resolve().parents[3]
FETCH_SCRIPT = REPO / "tools" / "kafka" / "fetch.sh"
LOG4J_CONFIG = REPO / "tools" / "kafka" / "log4j2.yaml"

#: JVM flags that favour a quick start over peak throughput (tests): C1 only,
#: serial GC, a small heap.
FAST_START_FLAGS = (
    *("-Xms256m", "-Xmx512m"),
    *("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC", "-XX:-UsePerfData"),
)
#: JVM flags for benchmarks and `make run`: a broker run as in production, with
#: the heap and G1 settings Kafka's own start scripts use (kafka-server-start.sh's
#: 1 GB heap, kafka-run-class.sh's KAFKA_JVM_PERFORMANCE_OPTS) and the full JIT.
THROUGHPUT_FLAGS = (
    *("-Xms1g", "-Xmx1g"),
    *("-XX:+UseG1GC", "-XX:MaxGCPauseMillis=20", "-XX:InitiatingHeapOccupancyPercent=35"),
    *("-XX:+ExplicitGCInvokesConcurrent", "-XX:-UsePerfData"),
)
#: Name prefix of the brokers' own temp data dirs (what a sweep looks for).
DIR_PREFIX: Final = "fleetcast-kafka-"
#: How long one readiness probe (an admin client listing topics) may take.
PROBE_TIMEOUT_S: Final = 5.0


class BrokerError(RuntimeError):
    """The broker did not start, or died; the message ends with its log tail."""


def libs_dir() -> Path:
    """The folder of broker jars, fetched on first use (a no-op once cached)."""
    out = subprocess.run([str(FETCH_SCRIPT)], check=True, capture_output=True, text=True)
    return Path(out.stdout.strip().splitlines()[-1])


def random_cluster_id() -> str:
    """A Kafka cluster id (base64url of a random UUID), as StorageTool would make."""
    while True:
        text = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not text.startswith("-"):
            return text


def server_properties(port: int, controller_port: int, data_dir: Path) -> str:
    """A combined broker+controller config for one node on loopback."""
    settings = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.bootstrap.servers": f"127.0.0.1:{controller_port}",
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
        "log.dirs": str(data_dir / "logs"),
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "4",
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "num.partitions": "1",
        # Topics are created explicitly (partition counts matter to group tests).
        "auto.create.topics.enable": "false",
        "num.network.threads": "2",
        "num.io.threads": "4",
        "log.flush.interval.ms": "9223372036854775807",
        "controlled.shutdown.enable": "true",
    }
    return "".join(f"{key}={value}\n" for key, value in settings.items())


@dataclass
class KafkaBroker:
    """One broker process; ``start``/``stop`` may be called again and again."""

    port: int
    controller_port: int
    data_dir: Path
    libs: Path
    fast_start: bool = True
    die_with_parent: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, repr=False)
    _log_file: IO[bytes] | None = field(default=None, repr=False)
    _own_dir: tempfile.TemporaryDirectory[str] | None = field(default=None, repr=False)
    _pending_archives: list[tuple[Path, Path]] = field(default_factory=list, repr=False)

    @classmethod
    def create(
        cls,
        *,
        port: int | None = None,
        data_dir: Path | None = None,
        fast_start: bool = True,
        die_with_parent: bool = False,
        avoid: Collection[int] = (),
    ) -> KafkaBroker:
        """A stopped broker on ``port`` (or a free one) with a fresh temp data dir.

        Its controller listener takes a free port other than ``port`` and the
        ``avoid`` ones: ports a caller has chosen for other servers it has not
        started yet, which the kernel would otherwise see as free.
        """
        libs = libs_dir()
        own_dir = None
        if data_dir is None:
            own_dir = tempfile.TemporaryDirectory(prefix=DIR_PREFIX)
            data_dir = Path(own_dir.name)
            scratch.mark(data_dir)
        port = port or free_port(avoid=avoid)
        return cls(
            port=port,
            controller_port=free_port(avoid={port, *avoid}),
            data_dir=data_dir,
            libs=libs,
            fast_start=fast_start,
            die_with_parent=die_with_parent,
            _own_dir=own_dir,
        )

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.data_dir / "broker.log"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def _java(self, main: str, *args: str) -> list[str]:
        flags = FAST_START_FLAGS if self.fast_start else THROUGHPUT_FLAGS
        return [
            "java",
            *flags,
            *self._cds_flags(main),
            "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def _cds_flags(self, main: str) -> tuple[str, ...]:
        """Use the class-data archive of ``main``, or have this run write it at exit."""
        tune = "fast" if self.fast_start else "throughput"
        archive = self.libs.parent / "cds" / f"{main}-{tune}.jsa"
        quiet = ("-Xlog:cds=off", "-Xlog:cds+dynamic=off")
        if archive.exists():
            return (f"-XX:SharedArchiveFile={archive}", *quiet)
        archive.parent.mkdir(parents=True, exist_ok=True)
        partial = archive.with_name(f"{archive.name}.{os.getpid()}.{id(self)}.partial")
        self._pending_archives.append((partial, archive))
        return (f"-XX:ArchiveClassesAtExit={partial}", *quiet)

    def _keep_archives(self) -> None:
        """Move archives written by JVMs that have exited into place (atomically)."""
        for partial, archive in self._pending_archives:
            if partial.exists():
                os.replace(partial, archive)
        self._pending_archives.clear()

    def _format(self, config: Path) -> None:
        if (self.data_dir / "logs" / "meta.properties").exists():
            return
        cmd = self._java("kafka.tools.StorageTool", "format", "--standalone")
        cmd += ["-t", random_cluster_id(), "-c", str(config)]
        out = subprocess.run(
            cmd, capture_output=True, text=True, check=False, preexec_fn=self._preexec()
        )
        self._keep_archives()
        if out.returncode != 0:
            raise BrokerError(f"kafka storage format failed:\n{out.stdout}{out.stderr}")

    def start(self, timeout: float = 90.0) -> None:
        """Launch the broker and return once an admin client can list topics."""
        if self.running:
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        config = self.data_dir / "server.properties"
        config.write_text(server_properties(self.port, self.controller_port, self.data_dir))
        self._format(config)
        preexec = self._preexec()
        with lifetime.critical():  # started and kept, or neither
            self._log_file = self.log_path.open("ab")
            self.process = subprocess.Popen(
                self._java("kafka.Kafka", str(config)),
                stdout=self._log_file,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=preexec,
            )
        scratch.add_user(self.data_dir, self.process.pid)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _preexec(self) -> Callable[[], None] | None:
        return lifetime.die_with_parent() if self.die_with_parent else None

    def _wait_ready(self, within_s: float) -> None:
        """Poll in the caller's thread, so Ctrl-C there waits for one probe at most."""
        deadline = time.monotonic() + within_s
        while time.monotonic() < deadline:
            if not self.running:
                raise BrokerError(f"kafka broker exited at start-up\n{self.log_tail()}")
            if _port_open(self.port) and _answers(self.bootstrap):
                return
            time.sleep(0.1)
        raise BrokerError(f"kafka broker not ready after {within_s:.0f}s\n{self.log_tail()}")

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM (controlled shutdown), then SIGKILL if it takes too long."""
        if self.process is not None:
            if self.process.poll() is None:
                self.process.send_signal(signal.SIGTERM)
                try:
                    self.process.wait(timeout)
                except subprocess.TimeoutExpired:
                    log.warning("kafka broker ignored SIGTERM for %.0fs; killing it", timeout)
                    self.process.kill()
                    self.process.wait()
            self.process = None
            self._keep_archives()
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def kill(self) -> None:
        """SIGKILL: a crash, not a shutdown."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
        self.stop()

    def restart(self, timeout: float = 90.0) -> None:
        """Stop and start on the same ports with the same data."""
        self.stop()
        self.start(timeout)

    def close(self) -> None:
        """Stop and delete the data dir if this object created it."""
        self.stop()
        if self._own_dir is not None:
            self._own_dir.cleanup()
            self._own_dir = None

    def create_topics(self, names: Iterable[str], partitions: int = 1) -> None:
        run_sync(create_topics(self.bootstrap, names, partitions))

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no broker log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run a coroutine to completion from sync code, even inside a running loop.

    Fixtures and ``restart()`` are called from async tests too; a worker thread
    gets its own event loop so the caller's loop is never re-entered.
    """
    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


def _answers(bootstrap: str) -> bool:
    """True when an admin client can list the topics."""
    with contextlib.suppress(KafkaError, OSError, asyncio.TimeoutError):
        run_sync(asyncio.wait_for(list_topics(bootstrap), timeout=PROBE_TIMEOUT_S))
        return True
    return False


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.2)
        return sock.connect_ex(("127.0.0.1", port)) == 0


@contextlib.asynccontextmanager
async def _admin(bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


async def list_topics(bootstrap: str) -> list[str]:
    async with _admin(bootstrap) as admin:
        return list(await admin.list_topics())


async def create_topics(bootstrap: str, names: Iterable[str], partitions: int = 1) -> None:
    """Create topics (existing ones are left alone) and wait until they have leaders."""
    wanted = list(dict.fromkeys(names))
    async with _admin(bootstrap) as admin:
        existing = set(await admin.list_topics())
        new = [NewTopic(n, num_partitions=partitions, replication_factor=1) for n in wanted]
        new = [topic for topic in new if topic.name not in existing]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(new)
        await _wait_for_leaders(admin, wanted)


async def _wait_for_leaders(admin: AIOKafkaAdminClient, names: list[str]) -> None:
    for _ in range(100):
        described = await admin.describe_topics(names)
        if all(
            topic["error_code"] == 0
            and topic["partitions"]
            and all(p["leader"] >= 0 for p in topic["partitions"])
            for topic in described
        ):
            return
        await asyncio.sleep(0.05)
    raise BrokerError(f"topics {names} have no leader yet")


def main() -> None:
    """`python -m fleetcast.devtools.kafka [port]`: run a broker until Ctrl-C."""
    import sys

    port = int(sys.argv[1]) if len(sys.argv) > 1 else 9092
    signals = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, signals)
    started = time.monotonic()
    with KafkaBroker.create(port=port, fast_start=False) as broker:
        print(f"kafka on {broker.bootstrap} after {time.monotonic() - started:.1f}s", flush=True)
        signal.sigwait(signals)


if __name__ == "__main__":
    main()
