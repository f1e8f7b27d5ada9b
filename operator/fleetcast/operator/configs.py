"""What the gateway and consumer processes are told: spec -> FLEETCAST_* environment.

Each process reads one pydantic-settings object from FLEETCAST_* variables
(gateway/fleetcast/gateway/settings.py, consumer/fleetcast/consumer/settings.py).
Plain values go into the component's ConfigMap (mounted with envFrom), secrets
into ``secretKeyRef`` variables, so no secret value ever passes through a
ConfigMap or an object the operator writes. The config hash covers both, and a
digest of each used Secret value, so changing any of them rolls the pods.
Pure functions only.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import orjson

from fleetcast.operator.spec import FleetBroadcastSpec

GATEWAY_PORT: Final = 8080
CONSUMER_PORT: Final = 8081
#: Address the processes bind inside the pod (they default to loopback).
BIND_ALL: Final = "0.0.0.0"  # noqa: S104 - a pod's own network namespace
#: Seconds the kubelet waits after the gateway's drain before it kills the pod.
TERMINATION_MARGIN_SECONDS: Final = 10
#: Seconds a paced drain keeps after its last hand-over for the clients to leave.
DRAIN_SETTLE_SECONDS: Final = 5
#: Longest drain the operator asks for, whatever the rate (the gateway's own maximum).
MAX_DRAIN_SECONDS: Final = 3600


@dataclass(frozen=True, slots=True)
class DrainTiming:
    """How one leaving gateway hands its clients over, and how long the kubelet waits for it."""

    #: FLEETCAST_DRAIN_SECONDS: the gateway's drain deadline.
    drain_seconds: int
    #: FLEETCAST_DRAIN_RATE: connections per second this pod sends away (0: the gateway's pace).
    rate: int
    #: terminationGracePeriodSeconds: preStop + drain + margin.
    grace_seconds: int


def drain_timing(spec: FleetBroadcastSpec) -> DrainTiming:
    """The drain of one gateway pod, from the spec's rate and the pod's connection limit.

    ``handoverRate`` is for all leaving pods together, and a rollout lets at
    most ``maxSurge`` of them leave at once, so each gets that share. A pod at
    its connection limit needs ``maxConnections / rate`` seconds; its drain
    deadline and the grace period cover that (the spec's drainSeconds is the
    floor).
    """
    gateway = spec.gateway
    rollout = gateway.rollout
    rate = max(1, rollout.handover_rate // rollout.max_surge) if rollout.handover_rate else 0
    drain = gateway.drain_seconds
    if rate:
        paced = math.ceil(gateway.limits.max_connections / rate) + DRAIN_SETTLE_SECONDS
        drain = min(MAX_DRAIN_SECONDS, max(drain, paced))
    grace = rollout.pre_stop_seconds + drain + TERMINATION_MARGIN_SECONDS
    return DrainTiming(drain, rate, grace)


def gateway_env(spec: FleetBroadcastSpec) -> dict[str, str]:
    """Plain (non-secret) settings of the gateway, by variable name."""
    gateway, auth, timing = spec.gateway, spec.auth, drain_timing(spec)
    env = {
        "FLEETCAST_HOST": BIND_ALL,
        "FLEETCAST_PORT": str(GATEWAY_PORT),
        "FLEETCAST_LOG_LEVEL": spec.log_level,
        "FLEETCAST_WS_PATH": gateway.path,
        "FLEETCAST_PING_INTERVAL": str(gateway.ping.interval_seconds),
        "FLEETCAST_PING_TIMEOUT": str(gateway.ping.timeout_seconds),
        "FLEETCAST_DRAIN_SECONDS": str(timing.drain_seconds),
        "FLEETCAST_MAX_CONNECTIONS": str(gateway.limits.max_connections),
        "FLEETCAST_HANDSHAKE_RATE": str(gateway.limits.handshakes_per_second),
        "FLEETCAST_JWT_ALGORITHMS": ",".join(auth.algorithms),
        "FLEETCAST_JWT_LEEWAY_S": str(auth.leeway_seconds),
    }
    if timing.rate:
        env["FLEETCAST_DRAIN_RATE"] = str(timing.rate)
    if gateway.cors.allowed_origins:
        env["FLEETCAST_CORS_ORIGINS"] = ",".join(gateway.cors.allowed_origins)
    env |= console_env(spec)
    if auth.issuer is not None:
        env["FLEETCAST_JWT_ISSUER"] = auth.issuer
    if auth.audience is not None:
        env["FLEETCAST_JWT_AUDIENCE"] = auth.audience
    if spec.redis.url is not None:
        env["FLEETCAST_REDIS_URL"] = spec.redis.url
    return env | tracing_env(spec, "fleetcast-gateway")


def console_env(spec: FleetBroadcastSpec) -> dict[str, str]:
    """The console's settings that differ from the gateway's defaults (so others keep theirs)."""
    console = spec.gateway.console
    env = {} if console.enabled else {"FLEETCAST_CONSOLE_ENABLED": "false"}
    tiles = console.map
    if tiles.tile_url is not None:
        env["FLEETCAST_MAP_TILE_URL"] = tiles.tile_url
    if tiles.attribution is not None:
        env["FLEETCAST_MAP_TILE_ATTRIBUTION"] = tiles.attribution
    if tiles.max_zoom is not None:
        env["FLEETCAST_MAP_MAX_ZOOM"] = str(tiles.max_zoom)
    return env


def tracing_env(spec: FleetBroadcastSpec, service: str) -> dict[str, str]:
    """The standard OTEL_* variables of common/tracing.py, when the spec asks for traces."""
    tracing = spec.monitoring.tracing
    if not tracing.enabled:
        return {}
    return {
        "OTEL_TRACES_EXPORTER": "otlp",
        "OTEL_EXPORTER_OTLP_ENDPOINT": tracing.endpoint,
        "OTEL_TRACES_SAMPLER_ARG": str(tracing.position_ratio),
        "OTEL_SERVICE_NAME": service,
    }


def consumer_env(spec: FleetBroadcastSpec) -> dict[str, str]:
    """Plain (non-secret) settings of the consumer, by variable name."""
    kafka = spec.kafka
    env = {
        "FLEETCAST_CONSUMER_HOST": BIND_ALL,
        "FLEETCAST_CONSUMER_PORT": str(CONSUMER_PORT),
        "FLEETCAST_LOG_LEVEL": spec.log_level,
        "FLEETCAST_KAFKA_BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "FLEETCAST_KAFKA_TOPICS": ",".join(kafka.topics),
        "FLEETCAST_KAFKA_DLQ_TOPIC": kafka.dead_letter_topic,
        "FLEETCAST_KAFKA_GROUP_ID": kafka.group_id,
        "FLEETCAST_KAFKA_SECURITY_PROTOCOL": kafka.security.protocol,
    }
    if kafka.security.protocol.startswith("SASL"):
        env["FLEETCAST_KAFKA_SASL_MECHANISM"] = kafka.security.sasl_mechanism
    if spec.routing.overrides:
        env["FLEETCAST_ROUTING_OVERRIDES"] = _json(spec.routing.overrides)
    if spec.redis.url is not None:
        env["FLEETCAST_REDIS_URL"] = spec.redis.url
    return env | tracing_env(spec, "fleetcast-consumer")


def gateway_secret_env(spec: FleetBroadcastSpec) -> list[dict[str, Any]]:
    """``env`` entries of the gateway that come from Secrets."""
    auth = spec.auth
    entries = _redis_secret(spec)
    if auth.jwt_secret_ref is not None:
        ref = auth.jwt_secret_ref
        entries.append(secret_var("FLEETCAST_JWT_SECRET", ref.name, ref.key))
    if auth.public_key_secret_ref is not None:
        ref_pk = auth.public_key_secret_ref
        entries.append(secret_var("FLEETCAST_JWT_PUBLIC_KEY", ref_pk.name, ref_pk.key))
    return entries


def consumer_secret_env(spec: FleetBroadcastSpec) -> list[dict[str, Any]]:
    """``env`` entries of the consumer that come from Secrets."""
    entries = _redis_secret(spec)
    ref = spec.kafka.security.secret_ref
    if ref is not None and spec.kafka.security.protocol.startswith("SASL"):
        entries.append(secret_var("FLEETCAST_KAFKA_SASL_USERNAME", ref.name, ref.username_key))
        entries.append(secret_var("FLEETCAST_KAFKA_SASL_PASSWORD", ref.name, ref.password_key))
    return entries


def secret_var(variable: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def config_hash(
    data: Mapping[str, str],
    secret_env: Sequence[Mapping[str, Any]],
    digests: Mapping[tuple[str, str], str],
) -> str:
    """A short stable digest of everything a pod is configured with.

    Deterministic (sorted keys) so an operator restart computes the same value
    and rolls nothing; any change to the ConfigMap, to which Secret keys are
    used, or to those keys' values (``digests``: (secret, key) -> a digest of
    the value, :func:`.secretrefs.digests`) changes it, and the new
    pod-template annotation rolls the pods. The values themselves never get
    here, only their digests.
    """
    used = sorted(
        {(ref["name"], ref["key"]) for ref in (e["valueFrom"]["secretKeyRef"] for e in secret_env)}
    )
    values = [[name, key, digests.get((name, key), "")] for name, key in used]
    canonical = orjson.dumps(
        {"data": data, "secrets": list(secret_env), "values": values}, option=orjson.OPT_SORT_KEYS
    )
    return hashlib.sha256(canonical).hexdigest()[:16]


def _redis_secret(spec: FleetBroadcastSpec) -> list[dict[str, Any]]:
    ref = spec.redis.secret_ref
    return [] if ref is None else [secret_var("FLEETCAST_REDIS_URL", ref.name, ref.key)]


def _json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS).decode()
