"""The operator process's one settings object (environment prefix FLEETCAST_OPERATOR_).

Built once in ``__main__`` and handed to kopf through the memo; nothing else in
the operator reads the environment. The Kubernetes credentials are not a
setting: like kopf itself, the operator uses the in-cluster ServiceAccount, or
else the kubeconfig named by ``KUBECONFIG``.
"""

from __future__ import annotations

import socket
import uuid
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _identity() -> str:
    return f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"


class Settings(BaseSettings):
    """How the operator runs: where it watches, who leads, how often it rechecks."""

    model_config = SettingsConfigDict(env_prefix="FLEETCAST_OPERATOR_", frozen=True)

    #: Namespaces to watch, comma-separated; empty means every namespace
    #: (cluster-wide mode, which needs the ClusterRole's cluster-wide grants).
    namespaces: Annotated[tuple[str, ...], NoDecode] = ()
    #: Elect one reconciling replica with a coordination.k8s.io Lease. Off only
    #: for a single replica run by hand (local development).
    leader_election: bool = True
    #: Name of the Lease the replicas of one operator share.
    lease_name: str = "fleetcast-operator"
    #: Namespace of the Lease: the operator's own (the chart sets it from the
    #: downward API). Required with leader_election.
    lease_namespace: str = ""
    #: Seconds a Lease stays held without renewal. A replica that stops cleanly
    #: releases it (a standby takes over within retry_seconds); a crashed one is
    #: replaced after this long.
    lease_seconds: int = Field(default=15, ge=2, le=600)
    #: Seconds the holder keeps trying to renew before it stops reconciling;
    #: shorter than lease_seconds, so it stops before anyone else may take over.
    renew_deadline_seconds: float = Field(default=10.0, gt=0, le=600)
    #: Seconds between Lease attempts (standby) and renewals (holder).
    retry_seconds: float = Field(default=2.0, gt=0, le=60)
    #: This replica's name in the Lease; default: host name and a random suffix.
    identity: str = Field(default_factory=_identity, min_length=1, max_length=128)
    #: Seconds between full drift checks of every FleetBroadcast. Owned objects
    #: are also watched, so most drift is repaired at once; this is the net.
    resync_seconds: float = Field(default=300.0, gt=0, le=86400)
    #: Seconds between retries of a FleetBroadcast whose last reconcile failed
    #: (for example one whose Secret does not exist yet), so creating the Secret
    #: is noticed soon without watching every Secret of the namespace.
    recheck_seconds: float = Field(default=10.0, gt=0, le=3600)
    #: Seconds between reads of the Secrets the FleetBroadcasts name, to roll the
    #: pods when a value they read was rotated (Secrets are never watched).
    secret_check_seconds: float = Field(default=30.0, gt=0, le=3600)
    #: Seconds between rounds of asking every pod for its figures (/stats,
    #: /ready, /metrics): BackendsReachable, connections, lag. 0 turns it off
    #: (BackendsReachable stays Unknown), e.g. where pods are simulated.
    probe_seconds: float = Field(default=10.0, ge=0, le=3600)
    #: Seconds to wait for one Kubernetes API request.
    request_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    #: Address of the operator's /healthz and /metrics endpoint.
    http_host: str = "0.0.0.0"  # noqa: S104 - the pod's own network namespace
    #: Port of that endpoint; 0 serves nothing.
    http_port: int = Field(default=8080, ge=0, le=65535)
    #: Level of the JSON logs.
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @model_validator(mode="after")
    def _lease_needs_a_namespace(self) -> Settings:
        if self.leader_election and not self.lease_namespace:
            raise ValueError(
                "FLEETCAST_OPERATOR_LEASE_NAMESPACE is required with leader election"
                " (the operator's own namespace)"
            )
        if self.renew_deadline_seconds >= self.lease_seconds:
            raise ValueError("renew_deadline_seconds must be shorter than lease_seconds")
        return self

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces
