"""The FleetBroadcast status as the CRD declares it: a typed model, and the printer columns.

The operator builds the status as plain data (:mod:`.conditions`); this model
is what the CRD's status schema is generated from (:mod:`.crdschema`), and a
unit test validates every status the operator builds against it, so the API
server never prunes a field the operator writes.
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

Generation = Annotated[int, Field(ge=0, json_schema_extra={"format": "int64"})]

PRINTER_COLUMNS: Final[tuple[dict[str, Any], ...]] = (
    {
        "name": "Ready",
        "type": "string",
        "jsonPath": '.status.conditions[?(@.type=="Ready")].status',
    },
    {
        "name": "Reason",
        "type": "string",
        "priority": 1,
        "jsonPath": '.status.conditions[?(@.type=="Ready")].reason',
    },
    {
        "name": "Gateways",
        "type": "string",
        "description": "Ready gateway pods / desired gateway pods.",
        "jsonPath": ".status.gateway.ready",
    },
    {
        "name": "Consumers",
        "type": "string",
        "description": "Ready consumer pods / desired consumer pods.",
        "jsonPath": ".status.consumer.ready",
    },
    {
        "name": "Connections",
        "type": "integer",
        "priority": 1,
        "description": "Clients connected to the gateways, as the gateways last reported.",
        "jsonPath": ".status.gateway.connections",
    },
    {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
)


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        frozen=True,
        extra="forbid",
        use_attribute_docstrings=True,
    )


class StatusCondition(_Model):
    """One condition, keyed by type (metav1.Condition's shape)."""

    type: Annotated[str, Field(max_length=64, pattern=r"^[A-Z][A-Za-z0-9]*$")]
    status: Literal["True", "False", "Unknown"]
    reason: Annotated[
        str,
        Field(min_length=1, max_length=1024, pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"),
    ]
    message: Annotated[str, Field(max_length=32768)]
    last_transition_time: Annotated[str, Field(json_schema_extra={"format": "date-time"})]
    observed_generation: Generation | None = None


class ComponentStatus(_Model):
    """What the operator last saw of one component's pods."""

    replicas: int | None = None
    """Pods the Deployment wants."""
    ready_replicas: int | None = None
    updated_replicas: int | None = None
    ready: str | None = None
    """readyReplicas/replicas, for kubectl get."""


class GatewayPod(_Model):
    """One gateway pod's own figures (from its /stats)."""

    name: str
    connections: int
    draining: bool


class Drain(_Model):
    """How the last gateway pod that stopped ended its hand-over (its termination message)."""

    pod: str
    finished_at: str | None = None
    exit_code: int | None = None
    message: Annotated[str, Field(max_length=1024)] = ""


class GatewayStatus(ComponentStatus):
    """The gateways: replica counts, and the live figures they report."""

    connections: int | None = None
    """Clients connected to all gateways, as they last reported."""
    pods: Annotated[tuple[GatewayPod, ...], Field(max_length=32)] | None = None
    """Connections per gateway pod (at most 32 listed)."""
    last_drain: Drain | None = None


class ConsumerStatus(ComponentStatus):
    """The consumers: replica counts, placement and lag."""

    placement: Literal["deployment", "sidecar"] | None = None
    lag: int | None = None
    """Records behind the high watermarks, all partitions together, as the consumers report."""


class FleetBroadcastStatus(_Model):
    """What the operator observed, written by the operator only."""

    observed_generation: Generation | None = None
    """The generation of the spec last applied."""
    conditions: (
        Annotated[
            tuple[StatusCondition, ...],
            Field(
                max_length=16,
                json_schema_extra={
                    "x-kubernetes-list-type": "map",
                    "x-kubernetes-list-map-keys": ["type"],
                },
            ),
        ]
        | None
    ) = None
    gateway: GatewayStatus | None = None
    consumer: ConsumerStatus | None = None
