"""Support for the real-pod e2e tests: the installed stack, clients, a producer.

The stack is what a user installs: tests/e2e/backing-services.yaml (Redis,
Kafka), the chart (CRD, RBAC, the operator's Deployment) and a FleetBroadcast
from the same chart in a second release, all from the images `make images`
built. Clients connect from outside the cluster to the gateway Service's
NodePort on the node's address; the producer writes to Kafka's external
listener (NodePort 30094, advertised on the node's address). Both work the
same on the real node here and on kind (whose node addresses the host reaches).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from fleetcast.client import session, summary
from fleetcast.devtools import cluster_access, images, tokens
from fleetcast.protocol import events
from tests.e2e import conftest, objects
from tests.integration import clients_support

NAMESPACE = conftest.BACKING_NAMESPACE
RELEASE = "fleetcast"
INSTANCE_RELEASE = "fleetcast-dev"
INSTANCE_VALUES = objects.CHART / "ci/05-dev-instance-values.yaml"
OPERATOR = f"{RELEASE}-operator"
KAFKA_EXTERNAL_PORT = 30094
#: Seconds for pods (images already on the node) to start and pass their probes.
READY_TIMEOUT = 300.0
HELM_TIMEOUT = "5m"


@dataclass(frozen=True)
class Stack:
    """The installed system as a client outside the cluster sees it."""

    fleet: str
    node_ip: str
    gateway_port: int
    jwt_secret: str

    @property
    def gateway_url(self) -> str:
        return f"http://{self.node_ip}:{self.gateway_port}"

    @property
    def kafka(self) -> str:
        return f"{self.node_ip}:{KAFKA_EXTERNAL_PORT}"

    def token(
        self, sub: str, org: str, roles: tuple[str, ...] = ("dispatcher",), **lists: Any
    ) -> str:
        return tokens.mint(self.jwt_secret, org=org, sub=sub, roles=roles, ttl_s=900, **lists)


def image(settings: conftest.E2ESettings) -> str:
    """The fleetcast image on the nodes: kind's loaded one, or the one `make images` built."""
    return settings.image or images.references().fleetcast


def image_values(settings: conftest.E2ESettings) -> list[str]:
    repository, _, tag = image(settings).rpartition(":")
    return ["--set", f"image.repository={repository}", "--set", f"image.tag={tag}"]


def instance_values(settings: conftest.E2ESettings, *extra: str) -> list[str]:
    """The FleetBroadcast release: skaffold's dev instance, two gateways on a NodePort."""
    fqdn = f"{NAMESPACE}.svc.cluster.local"
    return [
        f"--values={INSTANCE_VALUES}", *image_values(settings),
        "--set", f"fleetBroadcast.spec.kafka.bootstrapServers=kafka.{fqdn}:9092",
        "--set", f"fleetBroadcast.spec.redis.url=redis://redis.{fqdn}:6379/0",
        "--set", "fleetBroadcast.spec.gateway.replicas=2",
        "--set", "fleetBroadcast.spec.gateway.service.type=NodePort",
        "--set", "fleetBroadcast.spec.gateway.drainSeconds=6",
        *extra,
    ]  # fmt: skip


def install_backing(cluster: cluster_access.ClusterAccess) -> None:
    cluster.kubectl("apply", "-f", str(conftest.BACKING_FILE))
    for name in ("redis", "kafka"):
        cluster.kubectl(
            "rollout", "status", f"deployment/{name}", f"--namespace={NAMESPACE}",
            f"--timeout={READY_TIMEOUT:.0f}s", timeout=READY_TIMEOUT + 20,
        )  # fmt: skip


def helm_install(cluster: cluster_access.ClusterAccess, release: str, *values: str) -> None:
    cluster.helm(
        "upgrade", "--install", release, str(objects.CHART), f"--namespace={NAMESPACE}",
        "--wait", f"--timeout={HELM_TIMEOUT}", *values, timeout=READY_TIMEOUT + 60,
    )  # fmt: skip


def wait_fleet_ready(
    cluster: cluster_access.ClusterAccess, fleet: str, generation: int = 1
) -> None:
    last: list[objects.Obj | None] = [None]

    def ready() -> bool | None:
        last[0] = objects.get(cluster, "fleetbroadcast", fleet, NAMESPACE)
        return True if objects.is_true(last[0], "Ready", generation) else None

    try:
        objects.wait_for(f"FleetBroadcast {fleet} Ready", ready, READY_TIMEOUT, interval=1.0)
    except objects.Timeout as err:
        raise objects.Timeout(f"{err}; last status: {(last[0] or {}).get('status')}") from None


def node_ip(cluster: cluster_access.ClusterAccess) -> str:
    """InternalIP of a schedulable node (the real node here, a kind worker there)."""
    nodes = json.loads(cluster.kubectl("get", "nodes", "-o", "json").stdout)["items"]
    for node in nodes:
        taints = node["spec"].get("taints", [])
        if any(t.get("effect") == "NoSchedule" for t in taints):
            continue
        for address in node["status"]["addresses"]:
            if address["type"] == "InternalIP":
                return str(address["address"])
    raise AssertionError(f"no schedulable node with an InternalIP: {nodes}")


def node_port(cluster: cluster_access.ClusterAccess, service: str) -> int:
    found = objects.get(cluster, "service", service, NAMESPACE)
    assert found is not None, service
    return int(found["spec"]["ports"][0]["nodePort"])


def pods(cluster: cluster_access.ClusterAccess, selector: str) -> list[objects.Obj]:
    done = cluster.kubectl("get", "pods", f"-n={NAMESPACE}", "-l", selector, "-o", "json")
    items: list[objects.Obj] = json.loads(done.stdout)["items"]
    return items


def is_ready(pod: objects.Obj) -> bool:
    return objects.is_true(pod, "Ready") and "deletionTimestamp" not in pod["metadata"]


def gateway_selector(fleet: str) -> str:
    return f"app.kubernetes.io/instance={fleet},app.kubernetes.io/component=gateway"


def logs(cluster: cluster_access.ClusterAccess, target: str, lines: int = 60) -> str:
    done = cluster.kubectl("logs", f"-n={NAMESPACE}", target, f"--tail={lines}", check=False)
    return done.stdout + done.stderr


# --- Kafka ---------------------------------------------------------------------------


async def create_topics(bootstrap: str) -> None:
    """The consumer's topics, before it subscribes (3 partitions, as auto-creation would)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [*events.DEFAULT_TOPICS, events.DEFAULT_DLQ_TOPIC]
        with contextlib.suppress(TopicAlreadyExistsError):
            await admin.create_topics([NewTopic(t, 3, 1) for t in topics])
    finally:
        await admin.close()


@contextlib.asynccontextmanager
async def producer(bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    client = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


#: An envelope of ``event_type`` for ``org`` (the integration tests' helper).
envelope = clients_support.envelope


async def produce(client: AIOKafkaProducer, doc: dict[str, Any]) -> str:
    topic = events.CATALOG[doc["event_type"]]
    await client.send_and_wait(topic, orjson.dumps(doc), key=doc["organization_id"].encode())
    return str(doc["event_id"])


# --- clients -------------------------------------------------------------------------


@dataclass
class Recorder:
    """A `session.Sink` that keeps every event and status line a Listener reports."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    statuses: list[tuple[str, str, dict[str, object]]] = field(default_factory=list)

    def event(self, name: str, payload: object, received_at: float) -> None:
        if isinstance(payload, dict):
            self.events.append((name, payload))

    def status(self, kind: str, text: str, **fields: object) -> None:
        self.statuses.append((kind, text, fields))

    def ids(self, name: str) -> list[str]:
        return [str(p.get("event_id")) for n, p in self.events if n == name]

    def kinds(self, kind: str) -> list[tuple[str, dict[str, object]]]:
        return [(text, fields) for k, text, fields in self.statuses if k == kind]


@dataclass
class Client:
    """The project's own CLI session (reconnects and resumes with ``since``) in a task."""

    listener: session.Listener
    recorder: Recorder
    task: asyncio.Task[int]

    def subscribed(self) -> int:
        return len(self.recorder.kinds("subscribed"))

    def session(self) -> dict[str, Any]:
        """The latest ``session`` event ({} before the first)."""
        sessions = [fields.get("session") for _text, fields in self.recorder.kinds("session")]
        last = sessions[-1] if sessions else None
        return last if isinstance(last, dict) else {}

    def gateway(self) -> str:
        """The gateway id of the latest session ("" before the first)."""
        return str(self.session().get("gateway", ""))

    def answered(self) -> int:
        """Subscribe acks so far, granted or refused."""
        return self.subscribed() + len(self.recorder.kinds("refused"))


@contextlib.asynccontextmanager
async def clients(
    stack: Stack, tokens_: list[str], rooms: tuple[str, ...]
) -> AsyncIterator[list[Client]]:
    """One Listener per token, each subscribed to ``rooms``; stopped afterwards."""
    started: list[Client] = []
    for token in tokens_:
        recorder = Recorder()
        options = session.Options(
            url=stack.gateway_url,
            token=functools.partial(str, token),
            rooms=rooms,
            transports=("websocket",),
        )
        listener = session.Listener(options, recorder, summary.Summary(started_at=time.time()))
        started.append(Client(listener, recorder, asyncio.create_task(listener.run())))
    try:
        await wait_until("clients subscribed", lambda: all(c.answered() for c in started), 60)
        yield started
    finally:
        for client in started:
            client.listener.stop()
        await asyncio.gather(*(c.task for c in started), return_exceptions=True)


def lost_report(clients: list[Client], sent: list[str]) -> str:
    """Per client: how many of ``sent`` never came, where the gap is, what it was told."""
    lines = []
    for number, client in enumerate(clients):
        got = set(client.recorder.ids("transmission_started"))
        missing = [i for i, event_id in enumerate(sent) if event_id not in got]
        statuses = [f"{k}: {t}" for k, t, _f in client.recorder.statuses]
        lines.append(
            f"client {number}: {len(missing)} of {len(sent)} lost (indexes {missing[:5]}..."
            f"{missing[-3:]}); other events: "
            f"{[n for n, _p in client.recorder.events if n != 'transmission_started']}; "
            f"statuses: {statuses}"
        )
    return "\n".join(lines)


async def wait_until(what: str, done: Callable[[], bool], within: float) -> None:
    """Poll ``done`` on the event loop (clients keep running) for ``within`` seconds."""
    deadline = time.monotonic() + within
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within:.0f} s")
        await asyncio.sleep(0.2)


def write_log(path: Path, cluster: cluster_access.ClusterAccess, targets: list[str]) -> str:
    """The tails of ``targets``' logs, also kept in ``path`` for a failed run."""
    text = "\n".join(f"--- {t}\n{logs(cluster, t)}" for t in targets)
    path.write_text(text)
    return text
