"""The consumer's one settings object, read from FLEETCAST_* variables at start-up.

Built once in ``__main__`` (or by a test) and passed down; nothing else in the
consumer reads the environment. Lists accept a JSON list or ``a,b``. Every
field says its unit, its default and why.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import AfterValidator, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetcast.common import envlists, redisurl
from fleetcast.common.kafka import KafkaSecurity
from fleetcast.common.tracing import TracingSettings
from fleetcast.consumer import access, state
from fleetcast.protocol import control, escalation, events, keys, routing


class Settings(KafkaSecurity, TracingSettings, BaseSettings):
    """Consumer configuration (environment prefix ``FLEETCAST_``; traces: ``OTEL_*``)."""

    model_config = SettingsConfigDict(env_prefix="FLEETCAST_", extra="ignore", frozen=True)

    # --- Kafka ---------------------------------------------------------------------
    #: Brokers to bootstrap from, comma-separated host:port.
    kafka_bootstrap_servers: str = "127.0.0.1:9092"
    #: Event topics to consume (DESIGN.md's five by default).
    kafka_topics: envlists.EnvList = Field(
        default_factory=lambda: list(events.DEFAULT_TOPICS), min_length=1
    )
    #: Control messages (revocations, withdrawals: protocol/control.py) come on
    #: this topic; the consumer records them in Redis and fans them out to every
    #: gateway. Empty: no control topic.
    kafka_control_topic: str = control.DEFAULT_TOPIC
    #: Events that take access away (consumer/access.py): event type ->
    #: {"user_field": data field naming who loses it, "rooms": room kinds}. The
    #: default withdraws a task's incident room from its previous_user_id.
    access_rules: dict[str, dict[str, Any]] = Field(
        default_factory=lambda: {
            event_type: {"user_field": rule.user_field, "rooms": [k.value for k in rule.kinds]}
            for event_type, rule in access.DEFAULT_RULES.items()
        }
    )
    #: Incident statuses after which an incident leaves the org's open incidents
    #: (consumer/state.py; ``a,b`` or a JSON list).
    state_closed_statuses: envlists.EnvList = Field(
        default_factory=lambda: sorted(state.Rules().closed_statuses)
    )
    #: Alert event types after which an alert leaves the org's active alerts.
    state_alert_end_types: envlists.EnvList = Field(
        default_factory=lambda: sorted(state.Rules().alert_end_types)
    )
    #: Seconds an org's state table outlives its last change.
    state_ttl_s: int = Field(default=keys.STATE_TTL_S, ge=60)
    #: Consumer group: replicas sharing it split the partitions between them.
    kafka_group_id: str = Field(default="fleetcast-consumer", min_length=1)
    #: Where undeliverable messages go, with the reason in a header.
    kafka_dlq_topic: str = Field(default=events.DEFAULT_DLQ_TOPIC, min_length=1)
    #: Largest dead-letter record sent (bytes, as the producer counts a
    #: one-record batch): a copy that would be larger goes out truncated, with
    #: its original size in a header. Default: the broker's default
    #: message.max.bytes (1,048,588) less a margin; raise it together with the
    #: DLQ topic's max.message.bytes to keep whole copies of larger records.
    kafka_dlq_max_record_bytes: int = Field(default=1_048_576, ge=16 * 1024, le=64 * 1024 * 1024)
    #: Longest one dead-letter write may take (milliseconds): the producer's
    #: request timeout, which also bounds its wait for a DLQ topic that does
    #: not exist (aiokafka's default, 40 s, held every event that long).
    kafka_dlq_timeout_ms: int = Field(default=10_000, ge=100, le=300_000)
    #: What happens while the DLQ topic cannot take a record (missing,
    #: unauthorized, record too large: failures retrying will not fix).
    #: "continue": the record is logged with topic/partition/offset and
    #: skipped (counted), good events keep flowing. "block": the batch waits,
    #: retried with backoff, until the topic takes it (nothing skipped, nothing
    #: else delivered). /ready is false in both cases until a write succeeds.
    kafka_dlq_failure_policy: Literal["continue", "block"] = "continue"
    #: With "continue": once the DLQ topic failed, dead letters are skipped at
    #: once for this long (seconds) before the next one tries it again, so a
    #: broken topic does not hold every bad record for KAFKA_DLQ_TIMEOUT_MS.
    kafka_dlq_recheck_s: float = Field(default=30.0, gt=0, le=3600)
    #: Where a group with no committed offset starts. "latest": a new
    #: deployment does not replay old events to live clients as if new.
    kafka_auto_offset_reset: Literal["earliest", "latest"] = "latest"
    kafka_client_id: str = "fleetcast-consumer"
    #: Bytes the broker gathers before it answers a fetch, unless
    #: KAFKA_FETCH_MAX_WAIT_MS passes first. 1 answers at once: lowest latency,
    #: but at a low rate every event costs a fetch round trip of its own.
    kafka_fetch_min_bytes: int = Field(default=1, ge=1, le=64 * 1024 * 1024)
    #: Longest the broker holds a fetch waiting for KAFKA_FETCH_MIN_BYTES (ms).
    kafka_fetch_max_wait_ms: int = Field(default=100, ge=0, le=10_000)

    # --- Redis ---------------------------------------------------------------------
    #: Redis shared with the gateways (pub/sub, room history, fleet snapshot).
    #: One Redis (``redis://host:port/db``) or a Redis Cluster's seed list
    #: (``redis+cluster://host:port,host:port``): common/redisurl.py. Gateways and
    #: consumers of one deployment must use the same Redis and version (key names).
    redis_url: Annotated[str, AfterValidator(redisurl.validated)] = "redis://127.0.0.1:6379/0"
    #: Longest wait for one Redis call before it counts as failed (seconds).
    redis_timeout_s: float = Field(default=5.0, gt=0)

    # --- the pipeline ----------------------------------------------------------------
    #: Most records taken per poll, published in one Redis round trip. It only
    #: matters with a backlog (a poll returns what is there); per event, 2000
    #: cost a quarter less CPU than 1000 in bench/consumer_throughput.py.
    batch_max: int = Field(default=2000, ge=1, le=100_000)
    #: Shortest time between two offset commits (milliseconds): delivered
    #: offsets are committed in the background, coalesced; a crash redelivers
    #: at most about this much, and the publish fences drop it.
    commit_interval_ms: int = Field(default=1000, ge=0, le=60_000)
    #: Longest wait for the first record of a batch when idle (milliseconds).
    poll_timeout_ms: int = Field(default=100, ge=1, le=10_000)
    #: Largest message value accepted (bytes); larger ones are dead-lettered.
    max_event_bytes: int = Field(default=events.DEFAULT_MAX_EVENT_BYTES, ge=256)
    #: Event type -> room kinds, replacing the default routing of those types
    #: (JSON object, e.g. {"task_updated": ["user", "org"]}).
    routing_overrides: dict[str, list[str]] = Field(default_factory=dict)
    #: Entries kept per room history stream (approximate, XADD MAXLEN ~).
    history_maxlen: int = Field(default=keys.HISTORY_MAXLEN, ge=1)
    #: Seconds a room's history outlives its last event.
    history_ttl_s: int = Field(default=keys.HISTORY_TTL_S, ge=1)
    #: Seconds a user room's history (its inbox) outlives its last event; at least
    #: HISTORY_TTL_S is used.
    inbox_ttl_s: int = Field(default=keys.INBOX_TTL_S, ge=1)
    #: Seconds the publish fences (last offset published per partition, which
    #: drop redeliveries) outlive the last batch that moved them.
    fence_ttl_s: int = Field(default=keys.FENCE_TTL_S, ge=1)
    #: Seconds an asset stays in the fleet snapshot after its last report.
    fleet_asset_ttl_s: int = Field(default=keys.FLEET_ASSET_TTL_S, ge=1)
    #: Most assets kept per org in the fleet snapshot (oldest dropped first).
    fleet_max_assets: int = Field(default=keys.FLEET_MAX_ASSETS, ge=1)
    #: Longest pause between retries while Redis or Kafka is away (seconds).
    retry_backoff_max_s: float = Field(default=5.0, gt=0)
    #: /ready turns false, and fleetcast_consumer_stalled 1, when a partition
    #: has lag and nothing of it was delivered for this long (seconds): a
    #: consumer wedged on Redis, Kafka or one record, whatever its cause.
    stall_after_s: float = Field(default=30.0, gt=0, le=3600)
    #: After SIGTERM, how long the batch in hand may keep retrying (seconds).
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    #: Longest any one step of a stop may take (seconds): the final commit,
    #: leaving the group, flushing dead letters, closing Redis and HTTP. A step
    #: that overruns is abandoned (logged); Kafka redelivers what was not committed.
    shutdown_step_timeout_s: float = Field(default=5.0, gt=0, le=300)
    #: Seconds after SIGTERM at which the process exits whatever it is doing
    #: (status 1). Below the pod's terminationGracePeriodSeconds (30 s), so
    #: the consumer ends on its own terms, with a log line, not by SIGKILL.
    shutdown_deadline_s: float = Field(default=25.0, gt=0, le=3600)

    # --- escalation (consumer/escalating.py, protocol/escalation.py) --------------------
    #: Rules for unacknowledged alerts (JSON list), e.g. [{"event_types":
    #: ["alert_created"], "steps": [{"after_s": 30, "action": "redeliver"},
    #: {"after_s": 60, "action": "supervisors", "room": "channel:supervisors"},
    #: {"after_s": 90, "action": "emit"}], "ack_roles": []}]. Empty: no escalation.
    escalation_rules: list[dict[str, Any]] = Field(default_factory=list)
    #: Where escalation steps write their events (redeliveries and alert_escalated):
    #: a topic this consumer reads, so they are routed like any event.
    kafka_escalation_topic: str = Field(default="fleet.alerts", min_length=1)
    #: How often due escalation steps are looked for (milliseconds).
    escalation_tick_ms: int = Field(default=500, ge=10)

    # --- HTTP and logs ---------------------------------------------------------------
    #: Address of /health, /ready and /metrics; loopback by default, 0.0.0.0 in a pod.
    consumer_host: str = "127.0.0.1"
    consumer_port: int = Field(default=8081, ge=0, le=65535)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: Any) -> Any:
        return value.upper() if isinstance(value, str) else value

    @field_validator("access_rules")
    @classmethod
    def _access(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        access.rules_from(value)  # raises ValueError naming the bad entry
        return value

    @field_validator("escalation_rules")
    @classmethod
    def _escalation(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        for rule in value:
            escalation.parse_rule(rule)  # raises ValueError naming what is wrong
        return value

    def parsed_escalation_rules(self) -> list[escalation.Rule]:
        return [escalation.parse_rule(rule) for rule in self.escalation_rules]

    @field_validator("routing_overrides")
    @classmethod
    def _routing(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        routing.RoutingTable.with_overrides(value)  # raises ValueError naming the bad entry
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        if self.kafka_dlq_topic in self.kafka_topics:
            raise ValueError("FLEETCAST_KAFKA_DLQ_TOPIC must not be one of FLEETCAST_KAFKA_TOPICS")
        if self.kafka_control_topic in (*self.kafka_topics, self.kafka_dlq_topic):
            raise ValueError(
                "FLEETCAST_KAFKA_CONTROL_TOPIC must be a topic of its own (not an event or DLQ one)"
            )
        if self.shutdown_timeout_s >= self.shutdown_deadline_s:
            raise ValueError(
                "FLEETCAST_SHUTDOWN_TIMEOUT_S must be below FLEETCAST_SHUTDOWN_DEADLINE_S"
            )
        return self

    def subscribed_topics(self) -> list[str]:
        """The event topics, and the control topic when there is one."""
        extra = [self.kafka_control_topic] if self.kafka_control_topic else []
        return [*self.kafka_topics, *extra]

    def routing_table(self) -> routing.RoutingTable:
        return routing.RoutingTable.with_overrides(self.routing_overrides)

    def kafka_client_options(self) -> dict[str, Any]:
        """Connection options shared by the consumer and the dead-letter producer."""
        return self.kafka_options(self.kafka_bootstrap_servers, self.kafka_client_id)
