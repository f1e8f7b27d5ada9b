"""The FleetBroadcast spec: the one definition of its fields, from which the CRD is generated.

Everything the API server enforces comes from here (:mod:`.crdschema` writes
charts/fleetcast/files/crd-fleetbroadcasts.yaml from it): names (camelCase
aliases), types, ranges, enums, defaults, the descriptions ``kubectl explain``
shows (attribute docstrings) and the cross-field CEL rules (``_rules``). The
API server has validated and defaulted every spec that reaches the operator;
parsing it here gives the rest of the operator attributes instead of dict
lookups. The CEL rules are not evaluated by pydantic: the API server does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, JsonValue
from pydantic.alias_generators import to_camel

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

QUANTITY_PATTERN = (
    r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))"
    r"(([KMGTPE]i)|[numkMGTPE]|([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$"
)
TOPIC_PATTERN = r"^[A-Za-z0-9._-]+$"

Name = Annotated[str, Field(min_length=1, max_length=253)]
Topic = Annotated[str, Field(min_length=1, max_length=249, pattern=TOPIC_PATTERN)]
Quantity = int | Annotated[str, Field(pattern=QUANTITY_PATTERN)]
Quantities = Annotated[dict[str, Quantity], Field(max_length=8)]
Replicas = Annotated[int, Field(ge=1, le=1000)]
RoomKindName = Literal["org", "user", "channel", "incident", "asset", "fleet"]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


def _rules(*rules: tuple[str, str]) -> ConfigDict:
    """A model's CEL rules (rule, message), checked by the API server."""
    validations: list[JsonValue] = [{"rule": rule, "message": message} for rule, message in rules]
    return ConfigDict(json_schema_extra={"x-kubernetes-validations": validations})


def _set(**constraints: Any) -> Any:
    """A list field whose items are unique (``x-kubernetes-list-type: set``)."""
    return Field(**constraints, json_schema_extra={"x-kubernetes-list-type": "set"})


class KafkaSecretRef(_Model):
    """Secret holding the SASL username and password."""

    name: Name
    username_key: Name = "username"
    password_key: Name = "password"  # noqa: S105 - a key name, not a secret


class KafkaSecurity(_Model):
    """How the consumer authenticates to Kafka."""

    # has(): the rules also run on the default ({}) itself.
    model_config = _rules(
        (
            "!has(self.protocol) || !self.protocol.startsWith('SASL') || has(self.secretRef)",
            "kafka.security.secretRef (SASL username and password) is required with"
            " SASL_PLAINTEXT and SASL_SSL",
        )
    )

    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    secret_ref: KafkaSecretRef | None = None


class Kafka(_Model):
    """Where the domain services write the events."""

    bootstrap_servers: Annotated[str, Field(min_length=1, max_length=2048)]
    """Bootstrap servers, "host:port" comma-separated."""
    topics: Annotated[tuple[Topic, ...], _set(min_length=1, max_length=64)] = events.DEFAULT_TOPICS
    """Topics the consumer group reads."""
    dead_letter_topic: Topic = events.DEFAULT_DLQ_TOPIC
    """Topic that receives undeliverable messages, with the reason in a header."""
    group_id: Annotated[str, Field(min_length=1, max_length=255)] = "fleetcast-consumer"
    """Kafka consumer group of the consumer pods."""
    security: KafkaSecurity = Field(default_factory=KafkaSecurity)


class RedisSecretRef(_Model):
    """Secret key holding the Redis URL."""

    name: Name
    key: Name = "url"


class Redis(_Model):
    """The pub/sub bus and bounded room history between consumer and gateways."""

    model_config = _rules(
        ("has(self.url) != has(self.secretRef)", "redis needs exactly one of url and secretRef")
    )

    url: Annotated[str, Field(max_length=2048, pattern=r"^rediss?://")] | None = None
    """Redis URL without a password (use secretRef for one that has it)."""
    secret_ref: RedisSecretRef | None = None


class JwtSecretRef(_Model):
    """Secret key holding the HS256 shared secret."""

    name: Name
    key: Name = "secret"


class PublicKeySecretRef(_Model):
    """Secret key holding the PEM public key for RS256/ES256."""

    name: Name
    key: Name = "public-key"


class Auth(_Model):
    """How gateways check the clients' JWTs."""

    model_config = _rules(
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
        tuple[Literal["HS256", "RS256", "ES256"], ...], _set(min_length=1, max_length=3)
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


class Autoscaling(_Model):
    """HPA of the gateways; when enabled the operator leaves the replica count to it."""

    model_config = _rules(
        (
            "!has(self.minReplicas) || !has(self.maxReplicas)"
            " || self.minReplicas <= self.maxReplicas",
            "gateway.autoscaling.minReplicas must not be greater than maxReplicas",
        )
    )

    enabled: bool = True
    min_replicas: Replicas = 2
    max_replicas: Replicas = 10
    target_cpu_utilization_percentage: Annotated[int, Field(ge=1, le=100)] = Field(
        default=70, alias="targetCPUUtilizationPercentage"
    )
    """Average CPU use, in percent of the requests, the HPA aims at."""
    metrics: Annotated[tuple[dict[str, Any], ...], Field(max_length=8)] = ()
    """Extra autoscaling/v2 MetricSpecs (e.g. connections per pod), passed through as written."""


def _quantities(**values: int | str) -> Callable[[], dict[str, int | str]]:
    return lambda: dict(values)


class GatewayResources(_Model):
    """CPU and memory of each gateway pod."""

    requests: Quantities = Field(default_factory=_quantities(cpu="250m", memory="256Mi"))
    limits: Quantities = Field(default_factory=_quantities(memory="512Mi"))


class ConsumerResources(_Model):
    """CPU and memory of each consumer pod."""

    requests: Quantities = Field(default_factory=_quantities(cpu="100m", memory="128Mi"))
    limits: Quantities = Field(default_factory=_quantities(memory="256Mi"))


class Limits(_Model):
    """Per-pod admission limits."""

    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    """Connections one gateway pod accepts; beyond it handshakes get server_full."""
    handshakes_per_second: Annotated[int, Field(ge=1, le=100_000)] = 200
    """Token-bucket rate of new handshakes per pod; beyond it rate_limited."""


class Ping(_Model):
    """Engine.IO heartbeat."""

    interval_seconds: Annotated[int, Field(ge=1, le=300)] = 25
    timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 20


class Cors(_Model):
    """Browser origins allowed to connect."""

    allowed_origins: Annotated[
        tuple[Annotated[str, Field(min_length=1, max_length=512)], ...], Field(max_length=64)
    ] = ()
    """Allowed origins; "*" allows any. Empty keeps the gateway's default."""


class Service(_Model):
    """The Service in front of the gateways."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: Annotated[int, Field(ge=1, le=65535)] = 80
    session_affinity: Literal["None", "ClientIP"] = "ClientIP"
    """ClientIP keeps a client on one pod, which Socket.IO long-polling needs."""
    annotations: Annotated[dict[str, str], Field(max_length=32)] | None = None
    """Annotations of the Service (e.g. for a cloud load balancer)."""


class DisruptionBudget(_Model):
    """Voluntary disruptions the gateways tolerate at once."""

    max_unavailable: Annotated[int, Field(ge=0, le=1000)] = 1


class Gateway(_Model):
    """The Socket.IO gateways."""

    replicas: Annotated[int, Field(ge=0, le=1000)] = 2
    """Gateway pods when autoscaling is off."""
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    resources: GatewayResources = Field(default_factory=GatewayResources)
    limits: Limits = Field(default_factory=Limits)
    ping: Ping = Field(default_factory=Ping)
    cors: Cors = Field(default_factory=Cors)
    path: Annotated[str, Field(max_length=256, pattern=r"^/[A-Za-z0-9._~/-]*$")] = "/ws"
    """HTTP path of the Socket.IO endpoint."""
    drain_seconds: Annotated[int, Field(ge=0, le=3600)] = 30
    """Seconds a stopping gateway spends moving its clients away; the pods'
    terminationGracePeriodSeconds is this plus a margin."""
    service: Service = Field(default_factory=Service)
    pod_disruption_budget: DisruptionBudget = Field(default_factory=DisruptionBudget)


class Consumer(_Model):
    """The Kafka consumers (at most one per partition does work)."""

    replicas: Annotated[int, Field(ge=0, le=100)] = 1
    resources: ConsumerResources = Field(default_factory=ConsumerResources)


def _catalog_rule() -> dict[str, str]:
    names = ", ".join(f"'{name}'" for name in events.CATALOG)
    message = "routing.overrides keys must be event types of the catalog"
    return {"rule": f"self.all(t, t in [{names}])", "message": message}


class Routing(_Model):
    """Changes to the default routing table."""

    overrides: Annotated[
        dict[str, Annotated[tuple[RoomKindName, ...], _set(max_length=6)]],
        Field(
            max_length=14,
            json_schema_extra={"x-kubernetes-validations": [_catalog_rule()]},
        ),
    ] = Field(default_factory=dict)
    """Room kinds per event type, replacing the default for that type,
    e.g. {"task_updated": ["user", "org"]}."""


class FleetBroadcastSpec(_Model):
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


def parse(raw: object) -> FleetBroadcastSpec:
    """The typed spec of a FleetBroadcast body's ``spec``; raises pydantic's ValidationError."""
    return FleetBroadcastSpec.model_validate(raw)
