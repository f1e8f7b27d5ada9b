"""The operator process's one settings object (environment prefix FLEETCAST_OPERATOR_).

Built once in ``__main__`` and handed to kopf through the memo; nothing else in
the operator reads the environment. The Kubernetes credentials are not a
setting: like kopf itself, the operator uses the in-cluster ServiceAccount, or
else the kubeconfig named by ``KUBECONFIG``.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class Settings(BaseSettings):
    """How the operator runs: where it watches, how it shares the work, how often it rechecks."""

    model_config = SettingsConfigDict(env_prefix="FLEETCAST_OPERATOR_", frozen=True)

    #: Namespaces to watch, comma-separated; empty means every namespace
    #: (cluster-wide mode, which needs the ClusterRole's cluster-wide grants).
    namespaces: Annotated[tuple[str, ...], NoDecode] = ()
    #: Name of the kopf peering object (a KopfPeering per watched namespace, or
    #: a ClusterKopfPeering when cluster-wide). The operator creates it when
    #: missing; all replicas of one operator must use the same name.
    peering_name: str = "fleetcast"
    #: Peering priority of this replica. Only the live replica with the highest
    #: priority reconciles; kopf pauses *every* replica that sees another with
    #: the same priority, so unset (the default) draws a random one at start.
    peering_priority: int | None = Field(default=None, ge=0, le=2**31 - 1)
    #: Seconds a replica counts as alive after its last keep-alive. A replica
    #: that exits cleanly hands over at once; a crashed one after this long.
    peering_lifetime_seconds: int = Field(default=60, ge=2, le=3600)
    #: Run without peering (a single replica, or local development).
    standalone: bool = False
    #: Seconds between full drift checks of every FleetBroadcast. Owned objects
    #: are also watched, so most drift is repaired at once; this is the net.
    resync_seconds: float = Field(default=300.0, gt=0, le=86400)
    #: Seconds between rechecks of a Degraded FleetBroadcast (for example one
    #: whose Secret does not exist yet), so creating the Secret is noticed soon
    #: without watching every Secret of the namespace.
    recheck_seconds: float = Field(default=10.0, gt=0, le=3600)
    #: Seconds to wait for one Kubernetes API request.
    request_timeout_seconds: float = Field(default=30.0, gt=0, le=600)
    #: kopf's liveness endpoint, e.g. ``http://0.0.0.0:8080/healthz``; empty: none.
    health_endpoint: str = ""
    #: Level of the JSON logs.
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split_namespaces(cls, value: object) -> object:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def clusterwide(self) -> bool:
        return not self.namespaces
