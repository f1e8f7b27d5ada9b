"""The system as a user installs it, with pods that run: chart, operator pod,
FleetBroadcast, gateways and consumer from the image `make images` built.

Here the cluster is the control plane with a real node (`node_cluster`); on
kind (`make e2e-kind`) the same tests run against kind. The tests share one
installed stack and run in file order: each leaves two Ready gateways behind.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator
from datetime import datetime, timedelta
from pathlib import Path

import kubernetes
import pytest
import yaml

from fleetcast.devtools import cluster_access
from tests.e2e import conftest, objects
from tests.e2e import pods as support
from tests.e2e.pods import NAMESPACE

#: The first test also waits for the shared stack (install, images on the node, Ready).
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(900)]

ORG, OTHER_ORG = "org-e2e", "org-other"
#: Seconds for a produced event to reach a client once the stack is warm.
DELIVERY_TIMEOUT = 60.0
#: Seconds of the first delivery (the consumer group may still be joining).
FIRST_DELIVERY_TIMEOUT = 180.0
GATEWAYS = 2


@pytest.fixture(scope="module")
def stack(
    node_cluster: cluster_access.ClusterAccess,
    e2e_settings: conftest.E2ESettings,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[support.Stack]:
    """Backing services, the chart, a FleetBroadcast Ready and one event delivered."""
    cluster, started = node_cluster, time.monotonic()
    values = yaml.safe_load(support.INSTANCE_VALUES.read_text())
    fleet = str(values["fleetBroadcast"]["name"])
    logs = tmp_path_factory.mktemp("real-pods") / "pods.log"
    targets = [
        f"deployment/{support.OPERATOR}",
        f"deployment/{fleet}-gateway",
        f"deployment/{fleet}-consumer",
    ]
    try:
        support.install_backing(cluster)
        node_ip = support.node_ip(cluster)
        asyncio.run(support.create_topics(f"{node_ip}:{support.KAFKA_EXTERNAL_PORT}"))
        support.helm_install(cluster, support.RELEASE, *support.image_values(e2e_settings))
        support.helm_install(
            cluster, support.INSTANCE_RELEASE, *support.instance_values(e2e_settings)
        )
        support.wait_fleet_ready(cluster, fleet)
        stack = support.Stack(
            fleet=fleet,
            node_ip=node_ip,
            gateway_port=support.node_port(cluster, f"{fleet}-gateway"),
            jwt_secret=str(values["exampleSecrets"]["jwtSecret"]),
        )
        took = asyncio.run(first_delivery(stack))
    except BaseException:
        print(support.write_log(logs, cluster, targets))
        raise
    ready = time.monotonic() - started - took
    print(f"e2e figure: install -> Ready: {ready:.1f} s; first event {took:.1f} s later")
    yield stack
    for release in (support.INSTANCE_RELEASE, support.RELEASE):
        cluster.helm("uninstall", release, f"-n={NAMESPACE}", "--wait", check=False)
    cluster.kubectl("delete", "-f", str(conftest.BACKING_FILE), "--wait=false", check=False)


async def first_delivery(stack: support.Stack) -> float:
    """Produce until one event arrives: the consumer group joins after the pods are Ready."""
    started = time.monotonic()
    token = stack.token("warm-up", ORG)
    async with (
        support.producer(stack.kafka) as kafka,
        support.clients(stack, [token], ("channel:ch-warm",)) as (client,),
    ):
        while not client.recorder.ids("transmission_started"):
            if time.monotonic() - started > FIRST_DELIVERY_TIMEOUT:
                raise AssertionError(f"no event reached a client in {FIRST_DELIVERY_TIMEOUT:.0f} s")
            await support.produce(
                kafka, support.envelope("transmission_started", ORG, channel_id="ch-warm")
            )
            await asyncio.sleep(2.0)
    return time.monotonic() - started


def exec_in(cluster: cluster_access.ClusterAccess, target: str, *argv: str) -> str:
    return cluster.kubectl("exec", f"-n={NAMESPACE}", target, "--", *argv).stdout


def test_operator_runs_in_its_own_pod_from_the_image(
    node_cluster: cluster_access.ClusterAccess,
    stack: support.Stack,
    e2e_settings: conftest.E2ESettings,
) -> None:
    (pod,) = support.pods(node_cluster, "app.kubernetes.io/component=operator")
    assert support.is_ready(pod)
    (status,) = pod["status"]["containerStatuses"]
    assert status["image"].endswith(support.image(e2e_settings).rpartition("/")[2]), status["image"]
    target = f"pod/{pod['metadata']['name']}"
    assert exec_in(node_cluster, target, "id", "-u").strip() == "10001"
    refused = node_cluster.kubectl(
        "exec", f"-n={NAMESPACE}", target, "--", "touch", "/opt/x", check=False
    )
    assert "Read-only file system" in refused.stderr


def test_gateway_and_consumer_pods_pass_their_real_probes(
    node_cluster: cluster_access.ClusterAccess, stack: support.Stack
) -> None:
    for component, count in (("gateway", GATEWAYS), ("consumer", 1)):
        selector = (
            f"app.kubernetes.io/instance={stack.fleet},app.kubernetes.io/component={component}"
        )
        found = support.pods(node_cluster, selector)
        assert len(found) == count, [p["metadata"]["name"] for p in found]
        for pod in found:
            assert support.is_ready(pod), pod["status"]
            (container,) = pod["spec"]["containers"]
            assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
            assert container["securityContext"]["readOnlyRootFilesystem"] is True
            (status,) = pod["status"]["containerStatuses"]
            assert status["restartCount"] == 0, f"{component} restarted: {status}"
    # Through the Service, as a browser would: the console and its vendored bundle.
    for path in ("/ready", "/", "/vendor/socket.io.min.js"):
        with urllib.request.urlopen(f"{stack.gateway_url}{path}", timeout=10) as answer:  # noqa: S310
            assert answer.status == 200, path


async def test_events_reach_clients_outside_the_cluster_with_rbac_and_org_isolation(
    stack: support.Stack,
) -> None:
    tokens = [
        stack.token("dispatcher-a", ORG),
        stack.token("unit-a", ORG, roles=("field_unit",), channels=("ch-own",)),
        stack.token("dispatcher-b", OTHER_ORG),
    ]
    async with (
        support.producer(stack.kafka) as kafka,
        support.clients(stack, tokens, ("channel:ch-1",)) as (
            dispatcher,
            unit,
            other,
        ),
    ):
        assert unit.recorder.kinds("refused"), (
            "a field unit subscribed to a channel not in its token"
        )
        mine = [
            await support.produce(
                kafka, support.envelope("transmission_started", ORG, channel_id="ch-1")
            )
            for _ in range(5)
        ]
        theirs = [
            await support.produce(
                kafka, support.envelope("transmission_started", OTHER_ORG, channel_id="ch-1")
            )
            for _ in range(5)
        ]
        await support.wait_until(
            "both orgs' events delivered",
            lambda: (
                len(dispatcher.recorder.ids("transmission_started")) >= 5
                and len(other.recorder.ids("transmission_started")) >= 5
            ),
            DELIVERY_TIMEOUT,
        )
        await asyncio.sleep(1.0)  # anything misrouted would arrive by now
    assert dispatcher.recorder.ids("transmission_started") == mine
    assert other.recorder.ids("transmission_started") == theirs
    assert unit.recorder.ids("transmission_started") == []
    for name, payload in dispatcher.recorder.events:
        if name == "transmission_started":
            assert payload["room"] == "channel:ch-1"
            assert payload["organization_id"] == ORG


@contextlib.asynccontextmanager
async def steady_stream(
    stack: support.Stack, channel: str, every: float = 0.05
) -> AsyncIterator[list[str]]:
    """Events to ``channel`` every ``every`` s until the block ends; their ids, in order."""
    sent: list[str] = []
    stop = asyncio.Event()

    async def loop() -> None:
        async with support.producer(stack.kafka) as kafka:
            while not stop.is_set():
                sent.append(
                    await support.produce(
                        kafka, support.envelope("transmission_started", ORG, channel_id=channel)
                    )
                )
                await asyncio.sleep(every)

    task = asyncio.create_task(loop())
    try:
        yield sent
    finally:
        stop.set()
        await task


async def assert_all_once(clients: list[support.Client], sent: list[str]) -> None:
    """Every client gets every event exactly once, in order (0 lost, 0 duplicates)."""
    try:
        await support.wait_until(
            f"{len(sent)} events at each of {len(clients)} clients",
            lambda: all(set(sent) <= set(c.recorder.ids("transmission_started")) for c in clients),
            DELIVERY_TIMEOUT,
        )
    except AssertionError as err:
        raise AssertionError(f"{err}\n{support.lost_report(clients, sent)}") from None
    await asyncio.sleep(1.0)
    for client in clients:
        got = client.recorder.ids("transmission_started")
        assert len(got) == len(set(got)), f"duplicates: {len(got) - len(set(got))}"
        assert got == sent, (
            f"{len(set(sent) - set(got))} lost, order kept: {got == sorted(got, key=sent.index)}"
        )


def gateway_connections(cluster: cluster_access.ClusterAccess, pod: str) -> int:
    script = (
        "import json, urllib.request; "
        "print(json.load(urllib.request.urlopen('http://127.0.0.1:8080/stats'))['connections'])"
    )
    return int(exec_in(cluster, f"pod/{pod}", "python3", "-c", script))


ROOM = "channel:ch-resume"


def pod_of(client: support.Client) -> str:
    """The pod serving ``client`` now: its last session's gateway id is ``<pod>-<pid>``."""
    return client.gateway().rpartition("-")[0]


async def test_a_deleted_gateway_pod_moves_its_clients_without_loss(
    node_cluster: cluster_access.ClusterAccess, stack: support.Stack
) -> None:
    tokens = [stack.token(f"resume-{i}", ORG) for i in range(6)]
    async with (
        support.clients(stack, tokens, (ROOM,)) as clients,
        steady_stream(stack, "ch-resume") as sent,
    ):
        await asyncio.sleep(1.0)
        # the Service spreads connections at random: only the deleted pod's clients move
        busiest = collections.Counter(map(pod_of, clients)).most_common(1)[0][0]
        movers = [c for c in clients if pod_of(c) == busiest]
        count = await asyncio.to_thread(gateway_connections, node_cluster, busiest)
        assert count >= len(movers), (busiest, count, len(movers))
        await asyncio.to_thread(
            node_cluster.kubectl, "delete", "pod", busiest, f"-n={NAMESPACE}", "--wait=false"
        )
        try:
            await support.wait_until(
                f"{len(movers)} clients of {busiest} subscribed again elsewhere",
                lambda: all(pod_of(c) != busiest and ROOM in c.session()["rooms"] for c in movers),
                DELIVERY_TIMEOUT,
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{support.lost_report(movers, sent)}") from None
        await asyncio.sleep(2.0)
    await assert_all_once(clients, sent)
    for client in movers:  # the room came back in the handshake (auth.since), recovered
        recovered = client.session().get("recovered", {})
        assert recovered.get(ROOM) is True, client.session()
        assert all(recovered.values()), client.session()
    await asyncio.to_thread(wait_gateways, node_cluster, stack)


def wait_gateways(cluster: cluster_access.ClusterAccess, stack: support.Stack) -> None:
    selector = support.gateway_selector(stack.fleet)

    def settled() -> bool | None:
        found = support.pods(cluster, selector)
        return True if len(found) == GATEWAYS and all(map(support.is_ready, found)) else None

    objects.wait_for("two Ready gateways", settled, support.READY_TIMEOUT, interval=1.0)


class RolloutWatch:
    """Polls the gateway pods while a rollout runs: the fewest Ready at any time, and
    each pod as last seen (when an old one was told to stop, when a new one was Ready)."""

    def __init__(self, cluster: cluster_access.ClusterAccess, selector: str) -> None:
        self.cluster, self.selector = cluster, selector
        self.fewest_ready, self.last_seen = GATEWAYS, dict[str, objects.Obj]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            found = support.pods(self.cluster, self.selector)
            self.last_seen.update((p["metadata"]["name"], p) for p in found)
            self.fewest_ready = min(self.fewest_ready, sum(map(support.is_ready, found)))
            self._stop.wait(0.5)

    def stop_times(self, names: set[str]) -> list[datetime]:
        """When each of ``names`` was told to stop (its drain began), in order."""
        times = []
        for name in names:
            meta = self.last_seen[name]["metadata"]
            assert "deletionTimestamp" in meta, f"{name} was never seen terminating"
            deadline = datetime.fromisoformat(meta["deletionTimestamp"])
            times.append(deadline - timedelta(seconds=meta["deletionGracePeriodSeconds"]))
        return sorted(times)

    def ready_times(self, names: set[str]) -> list[datetime]:
        """When each of ``names`` became Ready, in order."""
        conditions = (objects.condition(self.last_seen[name], "Ready") for name in names)
        return sorted(datetime.fromisoformat(c["lastTransitionTime"]) for c in conditions if c)

    def __enter__(self) -> RolloutWatch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


async def test_helm_upgrade_rolls_gateways_one_at_a_time_through_the_drain(
    node_cluster: cluster_access.ClusterAccess,
    stack: support.Stack,
    e2e_settings: conftest.E2ESettings,
) -> None:
    selector = support.gateway_selector(stack.fleet)
    before = {p["metadata"]["name"] for p in support.pods(node_cluster, selector)}
    tokens = [stack.token(f"roll-{i}", ORG) for i in range(4)]
    async with (
        support.clients(stack, tokens, ("channel:ch-roll",)) as clients,
        steady_stream(stack, "ch-roll") as sent,
    ):
        with RolloutWatch(node_cluster, selector) as watch:
            changed = "fleetBroadcast.spec.gateway.ping.intervalSeconds=20"
            values = support.instance_values(e2e_settings, "--set", changed)
            release = support.INSTANCE_RELEASE
            await asyncio.to_thread(support.helm_install, node_cluster, release, *values)
            await asyncio.to_thread(support.wait_fleet_ready, node_cluster, stack.fleet, 2)
            await asyncio.to_thread(
                node_cluster.kubectl, "rollout", "status", f"deployment/{stack.fleet}-gateway",
                f"-n={NAMESPACE}", f"--timeout={support.READY_TIMEOUT:.0f}s",
                timeout=support.READY_TIMEOUT + 20,
            )  # fmt: skip
            await asyncio.to_thread(wait_gateways, node_cluster, stack)
        await asyncio.sleep(2.0)
    await assert_all_once(clients, sent)
    after = {p["metadata"]["name"] for p in support.pods(node_cluster, selector)}
    assert not before & after, "every gateway pod was replaced"
    assert watch.fewest_ready >= GATEWAYS, "a gateway went away before its successor was Ready"
    # One at a time: the k-th old gateway is told to stop only once k new ones are
    # Ready (server timestamps, 1 s resolution); their drains may then overlap.
    stopped, ready = watch.stop_times(before), watch.ready_times(after)
    assert len(stopped) == len(ready) == GATEWAYS
    for k, (new_ready, old_stopped) in enumerate(zip(ready, stopped, strict=True)):
        assert new_ready <= old_stopped, f"old gateway {k} stopped before new gateway {k} was Ready"
    for pod in support.pods(node_cluster, selector):
        env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0].get("env", [])}
        assert "FLEETCAST_PING_INTERVAL" not in env  # it comes from the ConfigMap
    config = objects.get(node_cluster, "configmap", f"{stack.fleet}-gateway-config", NAMESPACE)
    assert config is not None
    assert config["data"]["FLEETCAST_PING_INTERVAL"] == "20"


def test_the_disruption_budget_refuses_to_evict_the_last_gateway(
    node_cluster: cluster_access.ClusterAccess, stack: support.Stack
) -> None:
    wait_gateways(node_cluster, stack)
    wait_pdb_allows(node_cluster, stack, 1)
    first, second = (
        p["metadata"]["name"]
        for p in support.pods(node_cluster, support.gateway_selector(stack.fleet))
    )
    core = kubernetes.client.CoreV1Api(node_cluster.api_client())

    def eviction(name: str) -> kubernetes.client.V1Eviction:
        meta = kubernetes.client.V1ObjectMeta(name=name, namespace=NAMESPACE)
        return kubernetes.client.V1Eviction(metadata=meta)

    core.create_namespaced_pod_eviction(first, NAMESPACE, eviction(first))
    with pytest.raises(kubernetes.client.ApiException) as refused:
        core.create_namespaced_pod_eviction(second, NAMESPACE, eviction(second))
    assert refused.value.status == 429, refused.value
    assert "disruption budget" in str(refused.value.body)
    wait_gateways(node_cluster, stack)


def wait_pdb_allows(
    cluster: cluster_access.ClusterAccess, stack: support.Stack, allowed: int
) -> None:
    def check() -> bool | None:
        pdb = objects.get(cluster, "pdb", f"{stack.fleet}-gateway", NAMESPACE)
        return True if (pdb or {}).get("status", {}).get("disruptionsAllowed") == allowed else None

    objects.wait_for(f"PDB allows {allowed}", check, 60.0)


def test_a_restarted_operator_pod_resumes_and_repairs_drift(
    node_cluster: cluster_access.ClusterAccess, stack: support.Stack, tmp_path: Path
) -> None:
    (old,) = support.pods(node_cluster, "app.kubernetes.io/component=operator")
    service = f"{stack.fleet}-gateway"
    old_uid = objects.get(node_cluster, "service", service, NAMESPACE)["metadata"]["uid"]  # type: ignore[index]
    node_cluster.kubectl("delete", "pod", old["metadata"]["name"], f"-n={NAMESPACE}", "--wait=true")
    # Drift while no operator runs: the Service gone, the gateway Deployment hand-scaled.
    node_cluster.kubectl("delete", "service", service, f"-n={NAMESPACE}")
    patch = json.dumps({"spec": {"replicas": 4}})
    node_cluster.kubectl("patch", "deployment", service, f"-n={NAMESPACE}", "-p", patch)

    def repaired() -> bool | None:
        restored = objects.get(node_cluster, "service", service, NAMESPACE)
        deployment = objects.get(node_cluster, "deployment", service, NAMESPACE)
        if restored is None or deployment is None or restored["metadata"]["uid"] == old_uid:
            return None
        return True if deployment["spec"]["replicas"] == GATEWAYS else None

    try:
        objects.wait_for(
            "drift repaired by the new operator pod", repaired, support.READY_TIMEOUT, interval=1.0
        )
    except objects.Timeout:
        print(
            support.write_log(
                tmp_path / "operator.log", node_cluster, [f"deployment/{support.OPERATOR}"]
            )
        )
        raise
    (new,) = support.pods(node_cluster, "app.kubernetes.io/component=operator")
    assert new["metadata"]["name"] != old["metadata"]["name"]
    wait_gateways(node_cluster, stack)
    support.wait_fleet_ready(node_cluster, stack.fleet, 2)
