"""Asking the pods how they are: their own endpoints, every few seconds.

One task (owned by the startup/cleanup handlers, like the resync) lists the
operator's pods in each watched scope, asks every running one for its
figures in parallel (bounded, each with a short timeout), and keeps the
latest :class:`~.backends.PodReport` of each FleetBroadcast. When a
FleetBroadcast's reports change, it is told to publish its status
(:meth:`Prober.run`'s ``changed`` callback), so status writes follow real
changes, at most one per FleetBroadcast per period.

What each pod is asked (see :mod:`.backends`): a gateway its ``/stats``, a
consumer its ``/ready`` and ``/metrics``. The address is the pod IP and the
container port the pod spec names (``http``, or ``consumer`` for a sidecar).
A pod that does not answer gives an Unknown, never a False: the operator's
own network path (a NetworkPolicy) is not the backends' fault.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import aiohttp
from prometheus_client.parser import text_string_to_metric_families

from fleetcast.operator import rendering
from fleetcast.operator.backends import Component, PodReport

logger = logging.getLogger(__name__)

#: Seconds one pod gets to answer one request.
TIMEOUT_SECONDS: Final = 2.0
#: Pods asked at the same time.
CONCURRENCY: Final = 32
COMPONENT_LABEL: Final = "app.kubernetes.io/component"
INSTANCE_LABEL: Final = "app.kubernetes.io/instance"
Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class Target:
    """One endpoint to ask: which FleetBroadcast, which pod, where."""

    key: Key
    pod: str
    component: Component
    address: str
    port: int

    def url(self, path: str) -> str:
        return f"http://{self.address}:{self.port}{path}"


def targets(pods: Sequence[Mapping[str, Any]]) -> list[Target]:
    """The endpoints of running, not terminating pods (a sidecar consumer is a target too)."""
    found = []
    for pod in pods:
        meta, status = pod.get("metadata", {}), pod.get("status", {})
        labels = meta.get("labels") or {}
        address = status.get("podIP")
        if meta.get("deletionTimestamp") or status.get("phase") != "Running" or not address:
            continue
        key = (meta.get("namespace", ""), labels.get(INSTANCE_LABEL, ""))
        for container in pod.get("spec", {}).get("containers", []):
            component = _component(container.get("name", ""))
            port = _port(
                container,
                "consumer"
                if container.get("name") == rendering.CONSUMER
                and labels.get(COMPONENT_LABEL) == rendering.GATEWAY
                else "http",
            )
            if component is not None and port is not None:
                found.append(Target(key, meta.get("name", ""), component, address, port))
    return found


def _component(container: str) -> Component | None:
    if container == rendering.GATEWAY:
        return "gateway"
    if container == rendering.CONSUMER:
        return "consumer"
    return None


def _port(container: Mapping[str, Any], name: str) -> int | None:
    for port in container.get("ports") or []:
        if port.get("name") == name:
            number: int = port["containerPort"]
            return number
    return None


def consumer_lag(metrics: str) -> int | None:
    """Total ``fleetcast_consumer_lag`` over the partitions a consumer reports."""
    total, seen = 0.0, False
    for family in text_string_to_metric_families(metrics):
        if family.name != "fleetcast_consumer_lag":
            continue
        for sample in family.samples:
            total, seen = total + sample.value, True
    return int(total) if seen else None


async def ask(session: aiohttp.ClientSession, target: Target) -> PodReport:
    """One pod's report; an error is a report that did not answer."""
    try:
        if target.component == "gateway":
            return await _gateway(session, target)
        return await _consumer(session, target)
    except (aiohttp.ClientError, TimeoutError, ValueError, KeyError) as error:
        reason = type(error).__name__ if not str(error) else f"{type(error).__name__}: {error}"
        return PodReport(target.pod, target.component, answered=False, error=reason[:200])


async def _gateway(session: aiohttp.ClientSession, target: Target) -> PodReport:
    stats = await _json(session, target.url("/stats"))
    draining = bool(stats.get("draining"))
    return PodReport(
        target.pod,
        "gateway",
        answered=True,
        redis=None if draining else bool(stats.get("ready")),
        draining=draining,
        connections=int(stats.get("connections", 0)),
    )


async def _consumer(session: aiohttp.ClientSession, target: Target) -> PodReport:
    ready = await _json(session, target.url("/ready"))
    async with session.get(target.url("/metrics")) as response:
        metrics = await response.text()
    return PodReport(
        target.pod,
        "consumer",
        answered=True,
        kafka=bool(ready.get("joined")),
        redis=bool(ready.get("redis")),
        draining=not ready.get("running", True),
        lag=consumer_lag(metrics),
    )


async def _json(session: aiohttp.ClientSession, url: str) -> dict[str, Any]:
    """A JSON object from ``url``; /ready answers 503 with a body that says why."""
    async with session.get(url) as response:
        body = await response.json(content_type=None)
    if not isinstance(body, dict):
        raise ValueError(f"{url} did not answer a JSON object")
    return body


async def ask_all(targets_: Sequence[Target]) -> dict[Key, list[PodReport]]:
    """Every target's report, grouped by FleetBroadcast."""
    limit = asyncio.Semaphore(CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT_SECONDS)

    async def bounded(session: aiohttp.ClientSession, target: Target) -> PodReport:
        async with limit:
            return await ask(session, target)

    async with aiohttp.ClientSession(timeout=timeout) as session:
        reports = await asyncio.gather(*(bounded(session, t) for t in targets_))
    grouped: dict[Key, list[PodReport]] = {}
    for target, report in zip(targets_, reports, strict=True):
        grouped.setdefault(target.key, []).append(report)
    return grouped


@dataclass
class Prober:
    """The latest reports of every FleetBroadcast, refreshed every ``interval`` seconds."""

    list_pods: Callable[[], Sequence[Mapping[str, Any]]]
    interval: float
    reports: dict[Key, list[PodReport]] = field(default_factory=dict)

    async def run(self, changed: Callable[[Key], Awaitable[None]]) -> None:
        """Forever: list, ask, store, and tell which FleetBroadcasts changed."""
        while True:
            try:
                await self.once(changed)
            except Exception:
                logger.exception("probing the pods failed; next round in %.0f s", self.interval)
            await asyncio.sleep(self.interval)

    async def once(self, changed: Callable[[Key], Awaitable[None]]) -> None:
        pods = await asyncio.to_thread(self.list_pods)
        fresh = await ask_all(targets(pods))
        for key in set(self.reports) | set(fresh):
            before, after = self.reports.get(key), fresh.get(key)
            if after is None:
                self.reports.pop(key, None)
            else:
                self.reports[key] = after
            if before != after:
                await changed(key)
