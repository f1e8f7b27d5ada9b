"""The FleetBroadcast spec as the operator reads it: a typed model with the CRD's defaults.

The CRD (charts/fleetcast/files/crd-fleetbroadcasts.yaml) is the source of
truth; the API server has already validated and defaulted every spec that
reaches the operator. This model mirrors it field for field (camelCase
aliases, the same defaults, ranges and enums) so the rest of the operator works
with attributes instead of dict lookups, and a test compares the two schemas
so neither drifts from the other. Cross-field rules (CEL in the CRD) are not
repeated here.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from fleetcast.protocol import events

API_GROUP = "radiofleet.io"
API_VERSION = "v1alpha1"
KIND = "FleetBroadcast"
PLURAL = "fleetbroadcasts"

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
        alias_generator=to_camel, populate_by_name=True, frozen=True, extra="forbid"
    )


class KafkaSecretRef(_Model):
    name: Name
    username_key: Name = "username"
    password_key: Name = "password"  # noqa: S105 - a key name, not a secret


class KafkaSecurity(_Model):
    protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    secret_ref: KafkaSecretRef | None = None


class Kafka(_Model):
    bootstrap_servers: Annotated[str, Field(min_length=1, max_length=2048)]
    topics: Annotated[tuple[Topic, ...], Field(min_length=1, max_length=64)] = events.DEFAULT_TOPICS
    dead_letter_topic: Topic = events.DEFAULT_DLQ_TOPIC
    group_id: Annotated[str, Field(min_length=1, max_length=255)] = "fleetcast-consumer"
    security: KafkaSecurity = Field(default_factory=KafkaSecurity)


class RedisSecretRef(_Model):
    name: Name
    key: Name = "url"


class Redis(_Model):
    url: Annotated[str, Field(max_length=2048, pattern=r"^rediss?://")] | None = None
    secret_ref: RedisSecretRef | None = None


class JwtSecretRef(_Model):
    name: Name
    key: Name = "secret"


class PublicKeySecretRef(_Model):
    name: Name
    key: Name = "public-key"


class Auth(_Model):
    algorithms: Annotated[
        tuple[Literal["HS256", "RS256", "ES256"], ...], Field(min_length=1, max_length=3)
    ] = ("HS256",)
    jwt_secret_ref: JwtSecretRef | None = None
    public_key_secret_ref: PublicKeySecretRef | None = None
    issuer: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    audience: Annotated[str, Field(min_length=1, max_length=512)] | None = None
    leeway_seconds: Annotated[int, Field(ge=0, le=300)] = 10


class Autoscaling(_Model):
    enabled: bool = True
    min_replicas: Replicas = 2
    max_replicas: Replicas = 10
    target_cpu_utilization_percentage: Annotated[int, Field(ge=1, le=100)] = Field(
        default=70, alias="targetCPUUtilizationPercentage"
    )
    #: autoscaling/v2 MetricSpecs appended to the CPU metric as written.
    metrics: Annotated[tuple[dict[str, Any], ...], Field(max_length=8)] = ()


def _quantities(**values: int | str) -> Callable[[], dict[str, int | str]]:
    return lambda: dict(values)


class GatewayResources(_Model):
    requests: Quantities = Field(default_factory=_quantities(cpu="250m", memory="256Mi"))
    limits: Quantities = Field(default_factory=_quantities(memory="512Mi"))


class ConsumerResources(_Model):
    requests: Quantities = Field(default_factory=_quantities(cpu="100m", memory="128Mi"))
    limits: Quantities = Field(default_factory=_quantities(memory="256Mi"))


class Limits(_Model):
    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    handshakes_per_second: Annotated[int, Field(ge=1, le=100_000)] = 200


class Ping(_Model):
    interval_seconds: Annotated[int, Field(ge=1, le=300)] = 25
    timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 20


class Cors(_Model):
    allowed_origins: Annotated[
        tuple[Annotated[str, Field(min_length=1, max_length=512)], ...], Field(max_length=64)
    ] = ()


class Service(_Model):
    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: Annotated[int, Field(ge=1, le=65535)] = 80
    session_affinity: Literal["None", "ClientIP"] = "ClientIP"
    annotations: Annotated[dict[str, str], Field(max_length=32)] | None = None


class DisruptionBudget(_Model):
    max_unavailable: Annotated[int, Field(ge=0, le=1000)] = 1


class Gateway(_Model):
    replicas: Annotated[int, Field(ge=0, le=1000)] = 2
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    resources: GatewayResources = Field(default_factory=GatewayResources)
    limits: Limits = Field(default_factory=Limits)
    ping: Ping = Field(default_factory=Ping)
    cors: Cors = Field(default_factory=Cors)
    path: Annotated[str, Field(max_length=256, pattern=r"^/[A-Za-z0-9._~/-]*$")] = "/ws"
    drain_seconds: Annotated[int, Field(ge=0, le=3600)] = 30
    service: Service = Field(default_factory=Service)
    pod_disruption_budget: DisruptionBudget = Field(default_factory=DisruptionBudget)


class Consumer(_Model):
    replicas: Annotated[int, Field(ge=0, le=100)] = 1
    resources: ConsumerResources = Field(default_factory=ConsumerResources)


class Routing(_Model):
    #: Room kinds per event type, replacing the default routing of that type.
    overrides: Annotated[
        dict[str, Annotated[tuple[RoomKindName, ...], Field(max_length=6)]],
        Field(max_length=14),
    ] = Field(default_factory=dict)


class FleetBroadcastSpec(_Model):
    """``spec`` of a FleetBroadcast, after the API server's defaulting."""

    image: Annotated[str, Field(min_length=1, max_length=512)] = "fleetcast:0.1.0"
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    image_pull_secrets: Annotated[tuple[Name, ...], Field(max_length=16)] = ()
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    kafka: Kafka
    redis: Redis
    auth: Auth
    gateway: Gateway = Field(default_factory=Gateway)
    consumer: Consumer = Field(default_factory=Consumer)
    routing: Routing = Field(default_factory=Routing)


def parse(raw: object) -> FleetBroadcastSpec:
    """The typed spec of a FleetBroadcast body's ``spec``; raises pydantic's ValidationError."""
    return FleetBroadcastSpec.model_validate(raw)
