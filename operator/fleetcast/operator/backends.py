"""What the pods say about Kafka and Redis, and their live counters: BackendsReachable. Pure.

The operator never connects to Kafka or Redis itself (it would need their
credentials and their network path, and would prove only that *it* can reach
them). It asks the pods, which already know:

- a gateway's ``/stats``: ``ready`` is "not draining and the Redis path proven
  by a recent canary", plus ``connections`` and ``draining``;
- a consumer's ``/ready``: ``joined`` (its Kafka group), ``redis`` (a PING
  answered now); its ``/metrics``: ``fleetcast_consumer_lag`` per partition.

:mod:`.probing` fetches those into :class:`PodReport` objects; this module
turns them into the condition and the counters of the status.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from fleetcast.operator.conditions import BACKENDS_REACHABLE, Condition

Component = Literal["gateway", "consumer"]
#: Pods listed by name in status.gateway.pods (the rest are counted only).
LISTED_PODS: Final = 32
#: Pods named in one condition message.
NAMED: Final = 5


@dataclass(frozen=True, slots=True)
class PodReport:
    """One pod's answer (or why it gave none)."""

    pod: str
    component: Component
    answered: bool
    error: str = ""
    redis: bool | None = None
    kafka: bool | None = None
    draining: bool = False
    connections: int | None = None
    lag: int | None = None


def condition(reports: Sequence[PodReport], generation: int, *, enabled: bool) -> Condition:
    """BackendsReachable from the latest reports of one FleetBroadcast's pods."""

    def made(status: Literal["True", "False", "Unknown"], reason: str, message: str) -> Condition:
        return Condition(BACKENDS_REACHABLE, status, reason, message, generation)

    if not enabled:
        return made(
            "Unknown", "NotProbed", "pod probing is off (FLEETCAST_OPERATOR_PROBE_SECONDS=0)"
        )
    answered = [r for r in reports if r.answered and not r.draining]
    if not answered:
        silent = "; ".join(f"{r.pod}: {r.error}" for r in reports[:NAMED]) or "no running pod"
        return made("Unknown", "NoAnswer", f"no pod answered: {silent}")
    kafka = [r.pod for r in answered if r.kafka is False]
    redis = [r.pod for r in answered if r.redis is False]
    if kafka or redis:
        parts = []
        if kafka:
            parts.append(f"not joined to the Kafka group: {_names(kafka)}")
        if redis:
            parts.append(f"Redis not reachable: {_names(redis)}")
        reason = "KafkaUnreachable" if kafka else "RedisUnreachable"
        return made("False", reason, "; ".join(parts))
    gateways = sum(1 for r in answered if r.component == "gateway")
    consumers = sum(1 for r in answered if r.component == "consumer")
    message = f"{gateways} gateway(s) reach Redis; {consumers} consumer(s) reach Kafka and Redis"
    return made("True", "Reachable", message)


def counters(reports: Sequence[PodReport]) -> dict[str, dict[str, Any]]:
    """status.gateway / status.consumer counters: connections per gateway, consumer lag."""
    gateways = sorted(
        (r for r in reports if r.component == "gateway" and r.answered), key=lambda r: r.pod
    )
    consumers = [r for r in reports if r.component == "consumer" and r.answered]
    out: dict[str, dict[str, Any]] = {"gateway": {}, "consumer": {}}
    if gateways:
        out["gateway"]["connections"] = sum(r.connections or 0 for r in gateways)
        out["gateway"]["pods"] = [
            {"name": r.pod, "connections": r.connections or 0, "draining": r.draining}
            for r in gateways[:LISTED_PODS]
        ]
    lags = [r.lag for r in consumers if r.lag is not None]
    if lags:
        out["consumer"]["lag"] = sum(lags)
    return out


def _names(pods: Sequence[str]) -> str:
    more = f" and {len(pods) - NAMED} more" if len(pods) > NAMED else ""
    return ", ".join(pods[:NAMED]) + more
