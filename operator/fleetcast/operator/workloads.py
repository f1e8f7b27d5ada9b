"""The gateway and consumer parts of the FleetBroadcast spec (see :mod:`.spec`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from fleetcast.operator.specbase import LabelMap, Model, Quantities, Replicas, rules


def _quantities(**values: int | str) -> Callable[[], dict[str, int | str]]:
    return lambda: dict(values)


class GatewayResources(Model):
    """CPU and memory of each gateway pod."""

    requests: Quantities = Field(default_factory=_quantities(cpu="250m", memory="256Mi"))
    limits: Quantities = Field(default_factory=_quantities(memory="512Mi"))


class ConsumerResources(Model):
    """CPU and memory of each consumer pod."""

    requests: Quantities = Field(default_factory=_quantities(cpu="100m", memory="128Mi"))
    limits: Quantities = Field(default_factory=_quantities(memory="256Mi"))


class Limits(Model):
    """Per-pod admission limits."""

    max_connections: Annotated[int, Field(ge=1, le=1_000_000)] = 10_000
    """Connections one gateway pod accepts; beyond it handshakes get server_full."""
    handshakes_per_second: Annotated[int, Field(ge=1, le=100_000)] = 200
    """Token-bucket rate of new handshakes per pod; beyond it rate_limited."""


class Ping(Model):
    """Engine.IO heartbeat."""

    interval_seconds: Annotated[int, Field(ge=1, le=300)] = 25
    timeout_seconds: Annotated[int, Field(ge=1, le=300)] = 20


class Cors(Model):
    """Browser origins allowed to connect."""

    allowed_origins: Annotated[
        tuple[Annotated[str, Field(min_length=1, max_length=512)], ...], Field(max_length=64)
    ] = ()
    """Allowed origins; "*" allows any. Empty keeps the gateway's default."""


#: A map tile URL template the gateway accepts (its edge/console.py checks the same):
#: http(s) on a host whose leftmost label alone may be ``{s}``, or a path on the gateway's
#: own origin; no character that would change the page's Content-Security-Policy.
TILE_URL_PATTERN = (
    r"^(https?://([{]s[}][.])?[A-Za-z0-9.-]+(:[0-9]+)?)?"
    r"/[A-Za-z0-9._~:?#\[\]@!$&()*+=%{}-][A-Za-z0-9._~:/?#\[\]@!$&()*+=%{}-]*$"
)


class ConsoleMap(Model):
    """The map of the console: where its tiles come from. Unset fields keep the gateway's
    defaults (OpenStreetMap's tiles and attribution)."""

    model_config = rules(
        (
            "!has(self.tileUrl) || (self.tileUrl.contains('{z}')"
            " && self.tileUrl.contains('{x}') && self.tileUrl.contains('{y}'))",
            "console.map.tileUrl must contain {z}, {x} and {y}",
        )
    )

    tile_url: Annotated[str, Field(max_length=2048, pattern=TILE_URL_PATTERN)] | None = None
    """Tile URL template, e.g. https://tiles.agency.example/{z}/{x}/{y}.png (optional {s}
    subdomains and {r}): an agency's own tile server; the page may load images from its
    origin only."""
    attribution: Annotated[str, Field(max_length=1024)] | None = None
    """Credit shown in the map's corner (HTML), as the tile provider's licence asks."""
    max_zoom: Annotated[int, Field(ge=1, le=24)] | None = None
    """Highest zoom level the tile server serves."""


class Console(Model):
    """The browser dispatch console the gateways serve at /."""

    enabled: bool = True
    """Serve the console (static files, a plain client of the public protocol)."""
    map: ConsoleMap = Field(default_factory=ConsoleMap)


class Service(Model):
    """The Service in front of the gateways."""

    type: Literal["ClusterIP", "NodePort", "LoadBalancer"] = "ClusterIP"
    port: Annotated[int, Field(ge=1, le=65535)] = 80
    session_affinity: Literal["None", "ClientIP"] = "ClientIP"
    """ClientIP keeps a client on one pod, which Socket.IO long-polling needs."""
    annotations: Annotated[dict[str, str], Field(max_length=32)] | None = None
    """Annotations of the Service (e.g. for a cloud load balancer)."""


class DisruptionBudget(Model):
    """Voluntary disruptions (node drains) the pods tolerate at once."""

    max_unavailable: Annotated[int, Field(ge=0, le=1000)] = 1


class Toleration(Model):
    """A core/v1 Toleration: lets the pods land on nodes with a matching taint."""

    key: Annotated[str, Field(max_length=316)] | None = None
    operator: Literal["Exists", "Equal"] | None = None
    value: Annotated[str, Field(max_length=63)] | None = None
    effect: Literal["NoSchedule", "PreferNoSchedule", "NoExecute"] | None = None
    toleration_seconds: Annotated[int, Field(ge=0)] | None = None


class Pod(Model):
    """Where the component's pods may run, and what they carry besides the operator's own."""

    model_config = rules(
        (
            "!has(self.labels) || self.labels.all(k, !k.startsWith('app.kubernetes.io/'))",
            "pod.labels must not set app.kubernetes.io/ labels: the operator's selectors use them",
        )
    )

    node_selector: Annotated[dict[str, str], Field(max_length=32)] | None = None
    """Node labels the pods must match."""
    tolerations: Annotated[tuple[Toleration, ...], Field(max_length=32)] = ()
    """Taints the pods tolerate."""
    affinity: dict[str, Any] | None = None
    """A core/v1 Affinity (node, pod and anti-pod affinity), passed to the pods as written."""
    priority_class_name: Annotated[str, Field(min_length=1, max_length=253)] | None = None
    """PriorityClass of the pods; unset means the cluster default."""
    annotations: LabelMap | None = None
    """Extra annotations on the pods (the operator's config hash is added)."""
    labels: LabelMap | None = None
    """Extra labels on the pods (never app.kubernetes.io/ ones)."""


class TopologySpread(Model):
    """How the pods spread over nodes and zones (counted per rollout: pod-template-hash)."""

    nodes: Literal["required", "preferred"] = "required"
    """required: never two more pods on one node than on another (the scheduler
    waits rather than stack them); preferred: best effort."""
    zones: Literal["required", "preferred", "off"] = "preferred"
    """Spread over topology.kubernetes.io/zone; required leaves pods pending on
    nodes without that label, so it is only right where every node has one."""


class Rollout(Model):
    """How gateways are replaced without a storm: new pods first, then a paced hand-over."""

    model_config = rules(
        (
            "!has(self.progressDeadlineSeconds) || !has(self.minReadySeconds)"
            " || self.progressDeadlineSeconds > self.minReadySeconds",
            "gateway.rollout.progressDeadlineSeconds must be greater than minReadySeconds",
        )
    )

    handover_rate: Annotated[int, Field(ge=0, le=100_000)] = 0
    """Connections per second the leaving gateways send to the others during a
    rollout or scale-in, all of them together (each of maxSurge leaving pods
    gets its share); 0 leaves the pace to the gateway (spread over its drain)."""
    max_surge: Annotated[int, Field(ge=1, le=100)] = 1
    """New gateway pods started ahead of old ones (maxUnavailable is always 0)."""
    pre_stop_seconds: Annotated[int, Field(ge=0, le=120)] = 5
    """Seconds a leaving pod keeps serving before it starts its hand-over, so the
    Service's endpoints stop sending it new clients first."""
    min_ready_seconds: Annotated[int, Field(ge=0, le=3600)] = 10
    """Seconds a new pod must stay ready before an old one is let go."""
    progress_deadline_seconds: Annotated[int, Field(ge=10, le=86400)] = 600
    """Seconds without progress after which a rollout is reported as stalled
    (Degraded, ProgressDeadlineExceeded)."""


class GatewayKeda(Model):
    """KEDA scaling of the gateways on connections per pod (a Prometheus query)."""

    prometheus_address: Annotated[str, Field(min_length=1, max_length=2048, pattern=r"^https?://")]
    """Prometheus KEDA queries, e.g. http://prometheus-operated.monitoring.svc:9090."""
    connections_per_pod: Annotated[int, Field(ge=1, le=1_000_000)] = 5000
    """Target connections per gateway pod."""


class Autoscaling(Model):
    """HPA of the gateways; when enabled the operator leaves the replica count to it."""

    model_config = rules(
        (
            "!has(self.minReplicas) || !has(self.maxReplicas)"
            " || self.minReplicas <= self.maxReplicas",
            "gateway.autoscaling.minReplicas must not be greater than maxReplicas",
        ),
        (
            "!has(self.engine) || self.engine != 'keda' || has(self.keda)",
            "gateway.autoscaling.keda (the Prometheus address) is required with engine keda",
        ),
    )

    enabled: bool = True
    engine: Literal["hpa", "keda"] = "hpa"
    """hpa: a HorizontalPodAutoscaler on CPU (plus metrics); keda: a KEDA ScaledObject
    on connections per pod (gateway.autoscaling.keda) and CPU."""
    min_replicas: Replicas = 2
    max_replicas: Replicas = 10
    target_cpu_utilization_percentage: Annotated[int, Field(ge=1, le=100)] = Field(
        default=70, alias="targetCPUUtilizationPercentage"
    )
    """Average CPU use, in percent of the requests, the HPA aims at."""
    metrics: Annotated[tuple[dict[str, Any], ...], Field(max_length=8)] = ()
    """Extra autoscaling/v2 MetricSpecs (e.g. connections per pod), passed through as written."""
    keda: GatewayKeda | None = None

    @model_validator(mode="after")
    def _keda_settings(self) -> Autoscaling:
        if self.engine == "keda" and self.keda is None:
            raise ValueError("gateway.autoscaling.keda is required with engine keda")
        return self


class Gateway(Model):
    """The Socket.IO gateways."""

    replicas: Annotated[int, Field(ge=0, le=1000)] = 2
    """Gateway pods when autoscaling is off."""
    autoscaling: Autoscaling = Field(default_factory=Autoscaling)
    resources: GatewayResources = Field(default_factory=GatewayResources)
    limits: Limits = Field(default_factory=Limits)
    ping: Ping = Field(default_factory=Ping)
    cors: Cors = Field(default_factory=Cors)
    console: Console = Field(default_factory=Console)
    path: Annotated[str, Field(max_length=256, pattern=r"^/[A-Za-z0-9._~/-]*$")] = "/ws"
    """HTTP path of the Socket.IO endpoint."""
    drain_seconds: Annotated[int, Field(ge=0, le=3600)] = 30
    """Seconds a stopping gateway spends moving its clients away; the pods'
    terminationGracePeriodSeconds is this plus a margin."""
    service: Service = Field(default_factory=Service)
    pod_disruption_budget: DisruptionBudget = Field(default_factory=DisruptionBudget)
    rollout: Rollout = Field(default_factory=Rollout)
    pod: Pod = Field(default_factory=Pod)
    topology_spread: TopologySpread = Field(default_factory=TopologySpread)


class ConsumerAutoscaling(Model):
    """KEDA scaling of the consumer Deployment on Kafka lag (never beyond the partitions)."""

    model_config = rules(
        (
            "!has(self.minReplicas) || !has(self.maxReplicas)"
            " || self.minReplicas <= self.maxReplicas",
            "consumer.autoscaling.minReplicas must not be greater than maxReplicas",
        )
    )

    enabled: bool = False
    """A KEDA ScaledObject with a Kafka trigger; more consumers than partitions stay idle, so
    KEDA never scales beyond the partition count (allowIdleConsumers: false)."""
    min_replicas: Annotated[int, Field(ge=1, le=100)] = 1
    max_replicas: Annotated[int, Field(ge=1, le=100)] = 10
    lag_threshold: Annotated[int, Field(ge=1, le=10_000_000)] = 1000
    """Target lag (records behind) per consumer pod."""


class Consumer(Model):
    """The Kafka consumers (at most one per partition does work)."""

    model_config = rules(
        (
            "!has(self.placement) || self.placement != 'sidecar'"
            " || !has(self.autoscaling) || !self.autoscaling.enabled",
            "consumer.autoscaling needs consumer.placement deployment (sidecars scale with the"
            " gateways)",
        )
    )

    placement: Literal["deployment", "sidecar"] = "deployment"
    """deployment: a Deployment of its own; sidecar: a consumer container in every gateway pod,
    all in one consumer group (see docs/operator.md for when each is right)."""
    replicas: Annotated[int, Field(ge=0, le=100)] = 1
    """Consumer pods with placement deployment and no autoscaling."""
    resources: ConsumerResources = Field(default_factory=ConsumerResources)
    autoscaling: ConsumerAutoscaling = Field(default_factory=ConsumerAutoscaling)
    pod: Pod = Field(default_factory=Pod)
    topology_spread: TopologySpread = Field(default_factory=TopologySpread)
    pod_disruption_budget: DisruptionBudget = Field(default_factory=DisruptionBudget)
