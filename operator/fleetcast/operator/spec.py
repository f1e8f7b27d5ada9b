"""The FleetBroadcast spec: the one definition of its fields, from which the CRD is generated.

Everything the API server enforces comes from here (:mod:`.crdschema` writes
charts/fleetcast/files/crd-fleetbroadcasts.yaml from it): names (camelCase
aliases), types, ranges, enums, defaults, the descriptions ``kubectl explain``
shows (attribute docstrings) and the cross-field CEL rules
(:func:`.specbase.rules`). The gateway and consumer parts are in :mod:`.workloads`. The
API server has validated and defaulted every spec that reaches the operator;
parsing it here gives the rest of the operator attributes instead of dict
lookups. The CEL rules are not evaluated by pydantic: the API server does.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from fleetcast.operator.specbase import LabelMap, Model, Name, RoomKindName, Topic, rules, unique
from fleetcast.operator.workloads import Consumer, Gateway
from fleetcast.protocol import events

API_GROUP = "radiofleet.io"
API_VERSION = "v1alpha1"
KIND = "FleetBroadcast"
PLURAL = "fleetbroadcasts"
SHORT_NAMES = ("fb",)
DESCRIPTION = (
    "A running fleetcast: Kafka consumers that route dispatch events into Redis, and"
    " Socket.IO gateways that deliver them to clients. The operator turns it into"
    " Deployments, a Service, an HPA, a PDB, ConfigMaps and ServiceAccounts, and keeps them so."
)


class KafkaSecretRef(Model):
    """Secret holding the SASL username and password."""

    name: Name
    username_key: Name = "username"
    password_key: Name = "password"  # noqa: S105 - a key name, not a secret


class KafkaSecurity(Model):
    """How the consumer authenticates to Kafka."""

    # has(): the rules also run on the default ({}) itself.
    model_config = rules(
        (
            "!has(self.protocol) || !self.protocol.startsWith('SASL') || has(self.secretRef)",
            "kafka.security.secretRef (SASL username and password) is required with"
            " SASL_PLAINTEXT and SASL_SSL",
        )
    )

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    secret_ref: KafkaSecretRef | None = None


class Kafka(Model):
    """Where the domain services write the events."""

    bootstrap_servers: Annotated[str, Field(min_length=1, max_length=2048)]
    """Bootstrap servers, "host:port" comma-separated."""
    topics: Annotated[tuple[Topic, ...], unique(min_length=1, max_length=64)] = (
        events.DEFAULT_TOPICS
    )
    """Topics the consumer group reads."""
    dead_letter_topic: Topic = events.DEFAULT_DLQ_TOPIC
    """Topic that receives undeliverable messages, with the reason in a header."""
    group_id: Annotated[str, Field(min_length=1, max_length=255)] = "fleetcast-consumer"
    """Kafka consumer group of the consumer pods."""
    security: KafkaSecurity = Field(default_factory=KafkaSecurity)


class RedisSecretRef(Model):
    """Secret key holding the Redis URL."""

    name: Name
    key: Name = "url"


class Redis(Model):
    """The pub/sub bus and bounded room history between consumer and gateways."""

    model_config = rules(
        ("has(self.url) != has(self.secretRef)", "redis needs exactly one of url and secretRef")
    )

    url: Annotated[str, Field(max_length=2048, pattern=r"^rediss?(\+cluster)?://")] | None = None
    """Redis URL without a password: one server (``redis://host:6379/0``) or a Redis Cluster
    seed list (``redis+cluster://host-a:6379,host-b:6379``); secretRef for one with a password."""
    secret_ref: RedisSecretRef | None = None


class JwtSecretRef(Model):
    """Secret key holding the HS256 shared secret."""

    name: Name
    key: Name = "secret"


class PublicKeySecretRef(Model):
    """Secret key holding the PEM public key for RS256/ES256."""

    name: Name
    key: Name = "public-key"


class Auth(Model):
    """How gateways check the clients' JWTs."""

    model_config = rules(
        (
            "!('HS256' in self.algorithms) || has(self.jwtSecretRef)",
            "auth.jwtSecretRef is required when auth.algorithms has HS256",
        ),
        (
            "!('RS256' in self.algorithms || 'ES256' in self.algorithms)"
            " || has(self.publicKeySecretRef)",
            "auth.publicKeySecretRef is required when auth.algorithms has RS256 or ES256",
        ),
    )

    algorithms: Annotated[
        tuple[Literal["HS256", "RS256", "ES256"], ...], unique(min_length=1, max_length=3)
    ] = ("HS256",)
    """Accepted signature algorithms."""
    jwt_secret_ref: JwtSecretRef | None = None
    public_key_secret_ref: PublicKeySecretRef | None = None
    issuer: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """Required "iss" claim; unset means not checked."""
    audience: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    """Required "aud" claim; unset means not checked."""
    leeway_seconds: Annotated[int, Field(ge=0, le=300)] = 10
    """Clock skew allowed on "exp" and "nbf"."""


def _catalog_rule() -> dict[str, str]:
    names = ", ".join(f"'{name}'" for name in events.CATALOG)
    message = "routing.overrides keys must be event types of the catalog"
    return {"rule": f"self.all(t, t in [{names}])", "message": message}


class Routing(Model):
    """Changes to the default routing table."""

    overrides: Annotated[
        dict[str, Annotated[tuple[RoomKindName, ...], unique(max_length=6)]],
        Field(
            max_length=14,
            json_schema_extra={"x-kubernetes-validations": [_catalog_rule()]},
        ),
    ] = Field(default_factory=dict)
    """Room kinds per event type, replacing the default for that type,
    e.g. {"task_updated": ["user", "org"]}."""


class PodMonitor(Model):
    """A prometheus-operator PodMonitor for the gateway and consumer pods' /metrics."""

    enabled: bool = False
    interval: Annotated[str, Field(pattern=r"^[0-9]+(ms|s|m)$")] = "30s"
    labels: LabelMap | None = None
    """Labels of the PodMonitor, for the Prometheus that selects it (e.g. release: prometheus)."""


class Tracing(Model):
    """OpenTelemetry traces of the gateways and consumers, exported over OTLP/HTTP.

    Rendered as the standard OTEL_* variables of both components (an
    OTEL_* variable a platform injects otherwise works the same).
    """

    enabled: bool = False
    endpoint: Annotated[str, Field(min_length=1, max_length=512, pattern=r"^https?://")] = (
        "http://opentelemetry-collector:4318"
    )
    """Base URL of the OTLP/HTTP receiver (a collector, Jaeger, Tempo); /v1/traces is added."""
    position_ratio: Annotated[float, Field(ge=0, le=1)] = 0.01
    """Share of asset positions traced; every priority event (alerts, incidents, tasks) is."""


class Monitoring(Model):
    """What Prometheus scrapes (needs prometheus-operator's CRDs when enabled), and traces."""

    pod_monitor: PodMonitor = Field(default_factory=PodMonitor)
    tracing: Tracing = Field(default_factory=Tracing)


class FleetBroadcastSpec(Model):
    """The desired fleetcast: its image, Kafka, Redis, JWT checks, gateways and consumers."""

    image: Annotated[str, Field(min_length=1, max_length=512)] = "fleetcast:0.1.0"
    """Image of the gateway and consumer pods (one image, two commands)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    """When the kubelet pulls the image."""
    image_pull_secrets: Annotated[tuple[Name, ...], Field(max_length=16)] = ()
    """Names of Secrets with registry credentials for the pods."""
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    """Level of the gateway and consumer JSON logs."""
    kafka: Kafka
    redis: Redis
    auth: Auth
    gateway: Gateway = Field(default_factory=Gateway)
    consumer: Consumer = Field(default_factory=Consumer)
    routing: Routing = Field(default_factory=Routing)
    monitoring: Monitoring = Field(default_factory=Monitoring)


def parse(raw: object) -> FleetBroadcastSpec:
    """The typed spec of a FleetBroadcast body's ``spec``; raises pydantic's ValidationError."""
    return FleetBroadcastSpec.model_validate(raw)
