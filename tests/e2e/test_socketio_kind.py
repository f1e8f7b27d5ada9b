"""Real pods on kind: an event produced to Kafka reaches a Socket.IO client.

Only where Docker runs kind (`make kind-up`, `make images`, `kind load
docker-image`, then `make e2e-kind`; .github/workflows/e2e-kind.yml does all
of it). The chart runs the operator from FLEETCAST_E2E_IMAGE; Redis and Kafka
come from tests/e2e/backing-services.yaml; the FleetBroadcast is the one
skaffold's kind profile deploys (ci/05-dev-instance-values.yaml).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import jwt
import orjson
import pytest
import socketio
import yaml

from fleetcast.devtools import cluster_access
from tests.e2e import conftest, objects

pytestmark = [pytest.mark.e2e, pytest.mark.kind]

NAMESPACE = conftest.BACKING_NAMESPACE
INSTANCE_VALUES = objects.CHART / "ci/05-dev-instance-values.yaml"
ORG = "org-e2e"
#: Seconds for real pods (image pull is local: kind load) to become Ready.
READY_TIMEOUT = 300.0
#: Seconds to wait for a produced event at the client; produced again every few seconds
#: because the consumer group may still be joining when the first one is written.
DELIVERY_TIMEOUT = 120.0
PRODUCE_EVERY = 5.0


@pytest.fixture(scope="module")
def deployed(
    cluster: cluster_access.ClusterAccess,
    e2e_settings: conftest.E2ESettings,
    backing: conftest.Backing,
) -> Iterator[str]:
    """The chart and a FleetBroadcast on kind, next to the backing services; its name."""
    if e2e_settings.image is None:
        pytest.fail(
            "kind tests need FLEETCAST_E2E_IMAGE (the image loaded into kind)", pytrace=False
        )
    image = conftest.image_values(e2e_settings)
    chart = str(objects.CHART)
    cluster.helm("upgrade", "--install", "fleetcast", chart, f"-n={NAMESPACE}", "--wait", *image)
    cluster.helm(
        "upgrade", "--install", "fleetcast-dev", chart, f"-n={NAMESPACE}",
        f"--values={INSTANCE_VALUES}", *image, *backing.helm_values(),
    )  # fmt: skip
    name = str(yaml.safe_load(INSTANCE_VALUES.read_text())["fleetBroadcast"]["name"])
    objects.wait_for(
        f"FleetBroadcast {name} Ready",
        lambda: (
            objects.is_true(objects.get(cluster, "fleetbroadcast", name, NAMESPACE), "Ready")
            or None
        ),
        READY_TIMEOUT,
        interval=2.0,
    )
    yield name
    cluster.helm("uninstall", "fleetcast-dev", f"-n={NAMESPACE}", "--wait", check=False)
    cluster.helm("uninstall", "fleetcast", f"-n={NAMESPACE}", "--wait", check=False)


@pytest.fixture
def gateway_url(cluster: cluster_access.ClusterAccess, deployed: str) -> Iterator[str]:
    """http://127.0.0.1:<port> forwarded to the gateway Service (port 80)."""
    port = conftest.free_port()
    argv = [
        cluster.tool("kubectl"), f"--kubeconfig={cluster.kubeconfig}", f"-n={NAMESPACE}",
        "port-forward", "--address=127.0.0.1", f"service/{deployed}-gateway", f"{port}:80",
    ]  # fmt: skip
    forward = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        objects.wait_for("port-forward", lambda: _accepts(port) or None, 30.0)
        yield f"http://127.0.0.1:{port}"
    finally:
        forward.terminate()
        forward.wait(10)


def _accepts(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
        return True
    return False


def _token() -> str:
    values = yaml.safe_load(INSTANCE_VALUES.read_text())
    claims = {
        "sub": "e2e-dispatcher",
        "org_id": ORG,
        "roles": ["dispatcher"],
        "exp": int(time.time()) + 600,
    }
    return jwt.encode(claims, values["exampleSecrets"]["jwtSecret"], algorithm="HS256")


def _produce(cluster: cluster_access.ClusterAccess, event_id: str) -> None:
    """One incident_created envelope, keyed by org, written from inside the Kafka pod."""
    envelope = {
        "event_id": event_id,
        "event_type": "incident_created",
        "organization_id": ORG,
        "occurred_at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
        "data": {"incident_id": "inc-e2e", "channel_id": "ch-e2e"},
    }
    cluster.kubectl(
        "exec", "-i", f"-n={NAMESPACE}", "deployment/kafka", "--",
        "/opt/kafka/bin/kafka-console-producer.sh", "--bootstrap-server=localhost:9092",
        "--topic=fleet.incidents", "--property=parse.key=true", "--property=key.separator=|",
        input=f"{ORG}|{orjson.dumps(envelope).decode()}\n",
    )  # fmt: skip


@contextlib.asynccontextmanager
async def _client(url: str, received: asyncio.Queue[dict[str, Any]]) -> AsyncIterator[None]:
    client = socketio.AsyncClient(reconnection=False)
    client.on("incident_created", received.put_nowait)
    await client.connect(
        url, socketio_path="/ws", auth={"token": _token()}, transports=["websocket"]
    )
    try:
        yield
    finally:
        await client.disconnect()


async def test_event_from_kafka_reaches_socketio_client(
    cluster: cluster_access.ClusterAccess, gateway_url: str
) -> None:
    received: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: set[str] = set()
    async with _client(gateway_url, received):
        deadline = time.monotonic() + DELIVERY_TIMEOUT
        while time.monotonic() < deadline:
            event_id = str(uuid.uuid4())
            sent.add(event_id)
            await asyncio.to_thread(_produce, cluster, event_id)
            with contextlib.suppress(TimeoutError):
                event = await asyncio.wait_for(received.get(), PRODUCE_EVERY)
                assert event["event_id"] in sent
                assert event["organization_id"] == ORG
                assert "room" in event  # the client-facing room it came through
                return
    pytest.fail(
        f"no incident_created reached the client in {DELIVERY_TIMEOUT:.0f} s ({len(sent)} produced)"
    )
