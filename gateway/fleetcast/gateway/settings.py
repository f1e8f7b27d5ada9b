"""The gateway's one settings object, read from FLEETCAST_* variables at start-up.

Built once in ``__main__`` (or by a test) and passed down; nothing else in
the gateway reads the environment. Lists accept either JSON (``["a","b"]``)
or a comma-separated string (``a,b``). Every field says its unit and why.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Annotated, Final, Self

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import AfterValidator, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetcast.common import envlists, redisurl
from fleetcast.common.kafka import KafkaSecurity
from fleetcast.common.tracing import TracingSettings
from fleetcast.gateway.edge import console, policy
from fleetcast.protocol import control, keys, receipts

HMAC_ALGORITHMS: Final = frozenset({"HS256", "HS384", "HS512"})
RSA_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"})
EC_ALGORITHMS: Final = frozenset({"ES256", "ES384", "ES512"})
SUPPORTED_ALGORITHMS: Final = HMAC_ALGORITHMS | RSA_ALGORITHMS | EC_ALGORITHMS
#: RFC 7518 3.2: an HMAC key must be at least as long as the hash output.
MIN_SECRET_BYTES: Final = {"HS256": 32, "HS384": 48, "HS512": 64}


def _default_gateway_id() -> str:
    return f"{socket.gethostname()}-{os.getpid()}"


class Settings(KafkaSecurity, TracingSettings, BaseSettings):
    """Gateway configuration (environment prefix ``FLEETCAST_``; traces: ``OTEL_*``)."""

    model_config = SettingsConfigDict(env_prefix="FLEETCAST_", extra="ignore", frozen=True)

    # --- authentication ---------------------------------------------------------
    #: Shared HMAC secret the API service signs tokens with (HS*). Required
    #: when an HS algorithm is allowed; at least 32 bytes.
    jwt_secret: str | None = Field(default=None, repr=False)
    #: Accepted signature algorithms. "none" is never accepted.
    jwt_algorithms: envlists.EnvList = ["HS256"]
    #: PEM public key (or a path to a PEM file) for RS*/PS*/ES* tokens.
    jwt_public_key: str | None = Field(default=None, repr=False)
    #: Required ``iss`` claim, checked only when set.
    jwt_issuer: str | None = None
    #: Required ``aud`` claim, checked only when set.
    jwt_audience: str | None = None
    #: Clock skew tolerated on exp/nbf/iat (seconds).
    jwt_leeway_s: float = Field(default=10.0, ge=0, le=300)
    #: Longest a token may still be valid when presented (seconds): a token with
    #: exp years ahead (or 1e18) is refused, not honoured for years. 24 h.
    max_token_lifetime_s: float = Field(default=24 * 3600, gt=0)
    #: Longest one connection may live, whatever its tokens say (seconds): refresh
    #: cannot extend a session past it; it is then closed with session_expired
    #: and the client reconnects (its token is checked again). 24 h.
    max_session_age_s: float = Field(default=24 * 3600, gt=0)
    #: Role -> room grants (JSON object); see fleetcast.gateway.edge.policy.
    role_policy: dict[str, list[str]] = Field(default_factory=policy.default_grants)

    # --- redis ---------------------------------------------------------------------
    #: Redis holding pub/sub, room history and sessions.
    #: One Redis (``redis://host:port/db``) or a Redis Cluster's seed list
    #: (``redis+cluster://host:port,host:port``): common/redisurl.py. Gateways and
    #: consumers of one deployment must use the same Redis and version (key names).
    redis_url: Annotated[str, AfterValidator(redisurl.validated)] = "redis://127.0.0.1:6379/0"
    #: Longest wait for one Redis command before it counts as a failure (seconds).
    redis_timeout_s: float = Field(default=2.0, gt=0)
    #: Cap of the reconnect backoff after Redis went away (seconds): every second
    #: of it is a second of events waiting for the gap recovery after Redis is back.
    redis_backoff_max_s: float = Field(default=1.0, gt=0)
    #: On a Redis Cluster: how often the slot map is reloaded when nothing asked
    #: for it (seconds). A lost shard connection or a ``sunsubscribe`` push (a
    #: slot migrated) reloads it at once; this bounds how long an org whose
    #: slot moved silently waits for its new shard.
    redis_topology_check_s: float = Field(default=1.0, gt=0)
    #: How often the gateway proves its subscriber alive through Redis (seconds).
    canary_interval_s: float = Field(default=2.0, gt=0)
    #: How long a canary may take to come back before /ready turns false (seconds).
    canary_timeout_s: float = Field(default=1.0, gt=0)
    #: How often the orgs' message counters are compared with what arrived
    #: (positioning: a counter ahead twice in a row is a gap to recover; seconds).
    position_check_s: float = Field(default=5.0, gt=0)

    # --- HTTP / Socket.IO -------------------------------------------------------------
    #: Address to bind; loopback by default, 0.0.0.0 in a pod.
    host: str = "127.0.0.1"
    #: HTTP port for Socket.IO, /health, /ready, /stats, /metrics.
    port: int = Field(default=8080, ge=0, le=65535)
    #: Socket.IO path.
    ws_path: str = "/ws"
    #: Origins allowed to connect from a browser; empty = same origin only, "*" = any.
    cors_origins: envlists.EnvList = []
    #: Engine.IO ping interval and timeout (seconds).
    ping_interval: float = Field(default=25.0, gt=0)
    ping_timeout: float = Field(default=20.0, gt=0)
    #: Largest message a client may send (bytes); subscribes and tokens are small.
    max_client_message_bytes: int = Field(default=65_536, ge=1024)
    #: This gateway's name in Redis (sessions, canary); unique per process.
    gateway_id: str = Field(default_factory=_default_gateway_id)
    #: Time SIGTERM gives clients to move elsewhere before the process exits (seconds).
    drain_seconds: float = Field(default=10.0, ge=0)
    #: Connections a draining gateway sends away per second (a rollout's hand-over
    #: rate, set by the operator from the FleetBroadcast); 0 = spread them over
    #: half of DRAIN_SECONDS. Those not sent away in time go at the end.
    drain_rate: float = Field(default=0.0, ge=0)
    #: Each client told to go is told to wait a random 0..this before reconnecting
    #: (``retry_after`` in its disconnect_reason; seconds), so they arrive spread.
    drain_jitter_s: float = Field(default=1.0, ge=0)
    #: Where the end of a drain is written (connections, rate, seconds, remaining):
    #: the kubelet's termination message, shown as the FleetBroadcast's lastDrain.
    #: Written only when the file exists (the kubelet creates it in the container).
    termination_log: str = "/dev/termination-log"
    log_level: str = "INFO"
    #: Serve the browser dispatch console (static files, a plain protocol client) at /.
    console_enabled: bool = True
    #: Tile URL template of the console's map (Leaflet's ``{z}/{x}/{y}``, optional
    #: ``{s}`` subdomains and ``{r}``): OpenStreetMap's by default, as users expect;
    #: an agency's own tile server, or a path on this origin. The page's
    #: Content-Security-Policy lets images come from this origin only.
    map_tile_url: str = console.DEFAULT_TILE_URL
    #: Credit shown in the map's corner (HTML; the tile provider's licence asks for it).
    map_tile_attribution: str = console.DEFAULT_ATTRIBUTION
    #: Highest zoom level the tile server serves (OpenStreetMap's: 19).
    map_max_zoom: int = Field(default=19, ge=1, le=24)

    # --- control: revocations and withdrawals (edge/admin.py, edge/revocation.py) ----------
    #: Bearer token of the admin API (POST /admin/revoke, /admin/withdraw), at least
    #: 32 bytes; a secret of the operators' tooling, not a JWT key. Unset: no admin API.
    admin_token: SecretStr | None = Field(default=None, repr=False, min_length=32)
    #: Kafka brokers the admin API writes control messages to (host:port, comma-separated);
    #: unset: the admin API answers 503. (The gateway reads Kafka never; the consumer does.)
    kafka_bootstrap_servers: str | None = None
    #: The control topic (the consumer's FLEETCAST_KAFKA_CONTROL_TOPIC).
    kafka_control_topic: str = Field(default=control.DEFAULT_TOPIC, min_length=1)

    # --- receipts (edge/receipts.py, rooms/receipting.py) --------------------------------
    #: Event types clients answer with receipts (delivered, displayed, acknowledged)
    #: and whose writing to a socket the gateway records as ``sent``. Needs Kafka
    #: (FLEETCAST_KAFKA_BOOTSTRAP_SERVERS); without it receipts are answered
    #: ``unavailable``. Empty: no receipts.
    receipt_events: envlists.EnvList = sorted(receipts.DEFAULT_EVENTS)
    #: The Kafka topic receipts are written to, keyed by org (the consumer's
    #: FLEETCAST_KAFKA_TOPICS includes it, so consoles get them live).
    kafka_receipts_topic: str = Field(default=receipts.DEFAULT_TOPIC, min_length=1)
    #: Receipts per second per connection, and burst (rate_limited beyond): a
    #: unit answers each alert three times; a burst covers a reconnect's backlog.
    receipt_rate: float = Field(default=10.0, gt=0)
    receipt_burst: int = Field(default=60, ge=1)
    #: How often the ``sent`` facts are written to Kafka (milliseconds): one
    #: record per alert per flush, whatever its number of recipients.
    receipt_flush_ms: int = Field(default=200, ge=10)

    # --- limits ------------------------------------------------------------------------
    #: Connections per process; beyond it a handshake gets server_full.
    max_connections: int = Field(default=10_000, ge=1)
    #: Connections per user on this process; beyond it server_full.
    max_connections_per_user: int = Field(default=20, ge=1)
    #: Rooms one connection may be in, the two automatic ones included.
    max_rooms_per_connection: int = Field(default=100, ge=2)
    #: Subscribe/unsubscribe requests per second per connection, and burst.
    subscribe_rate: float = Field(default=10.0, gt=0)
    subscribe_burst: int = Field(default=20, ge=1)
    #: Requests of any kind (Socket.IO events) per second per connection, and
    #: burst; beyond either the connection is cut off (too_many_requests). A
    #: console subscribes to a few dozen rooms at most: this bounds a flood.
    request_rate: float = Field(default=20.0, gt=0)
    request_burst: int = Field(default=100, ge=1)
    #: Requests one connection may have in flight at once (too_many_requests beyond).
    max_requests_in_flight: int = Field(default=16, ge=1)
    #: Packets that are not Socket.IO a connection may send before it is cut off
    #: (protocol_error); each is counted, and logged at a bounded rate.
    max_protocol_errors: int = Field(default=3, ge=1)
    #: Bytes a client may leave unread on its socket, acks and pings included
    #: (frames are held back far below this); beyond it: slow_consumer.
    max_unsent_bytes: int = Field(default=1024 * 1024, ge=64 * 1024)
    #: Connections the kernel queues for accept (capped by net.core.somaxconn): a
    #: storm's SYNs beyond it are dropped and retried by clients 1, 3, 7 s later.
    listen_backlog: int = Field(default=4096, ge=1)
    #: Event-loop lag (seconds) above which new handshakes get HTTP 503 + Retry-After
    #: before any upgrade work, so a storm cannot swamp the process (0 = never).
    overload_lag_s: float = Field(default=0.25, ge=0)
    #: Handshakes admitted per second per process, and burst (reconnect storms).
    handshake_rate: float = Field(default=500.0, gt=0)
    handshake_burst: int = Field(default=1000, ge=1)
    #: Frames queued per connection before positions are shed and, when only
    #: priority frames remain, the connection is cut off as a slow consumer.
    max_buffered_messages: int = Field(default=1000, ge=8)
    #: Kernel send buffer of each client socket (bytes; 0 = the kernel's autotuning,
    #: up to 4 MiB): bounds what is already on its way to a slow client, so its
    #: alerts do not wait behind megabytes of positions (sendbuffer.py).
    send_buffer_bytes: int = Field(default=64 * 1024, ge=0)

    # --- org state (incidents, alerts, tasks) -----------------------------------------------
    #: Most records one state snapshot (incidents, alerts or a user's tasks) holds;
    #: beyond it the snapshot says complete: false.
    state_snapshot_max: int = Field(default=5000, ge=1)

    # --- fleet room (maps) ----------------------------------------------------------------
    #: Interval of the fleet room's ``asset_positions`` batches (milliseconds): a map
    #: gets one frame per interval with the latest position of each asset that moved.
    fleet_batch_ms: int = Field(default=1000, ge=10, le=60_000)
    #: Most assets one ``fleet_snapshot`` holds (the most recently seen first).
    fleet_snapshot_max: int = Field(default=keys.FLEET_MAX_ASSETS, ge=1)
    #: An asset not seen for this long is left out of snapshots (seconds); keep it
    #: equal to the consumer's FLEETCAST_FLEET_ASSET_TTL_S.
    fleet_asset_ttl_s: int = Field(default=keys.FLEET_ASSET_TTL_S, ge=1)

    @field_validator("jwt_algorithms")
    @classmethod
    def _algorithms(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("at least one algorithm is required")
        bad = [alg for alg in value if alg not in SUPPORTED_ALGORITHMS]
        if bad:
            raise ValueError(f"unsupported {bad} (supported: {sorted(SUPPORTED_ALGORITHMS)})")
        return value

    @field_validator("jwt_public_key")
    @classmethod
    def _public_key(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        if not value.lstrip().startswith("-----BEGIN"):
            value = Path(value).read_text()
        return value

    @field_validator("ws_path")
    @classmethod
    def _path(cls, value: str) -> str:
        if not value.startswith("/") or value == "/":
            raise ValueError("must start with '/' and name a path, e.g. /ws")
        return value.rstrip("/")

    @field_validator("map_tile_url")
    @classmethod
    def _tile_url(cls, value: str) -> str:
        console.tile_source(value)  # raises ValueError saying what is wrong
        return value

    @field_validator("role_policy")
    @classmethod
    def _role_policy(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        policy.Policy.from_grants(value)  # raises ValueError naming the bad grant
        return value

    @model_validator(mode="after")
    def _keys_match_algorithms(self) -> Self:
        algorithms = set(self.jwt_algorithms)
        if algorithms & HMAC_ALGORITHMS:
            if not self.jwt_secret:
                raise ValueError("FLEETCAST_JWT_SECRET is required for HS* algorithms")
            needed = max(MIN_SECRET_BYTES[alg] for alg in algorithms & HMAC_ALGORITHMS)
            if len(self.jwt_secret.encode()) < needed:
                raise ValueError(
                    f"FLEETCAST_JWT_SECRET must be at least {needed} bytes for {sorted(algorithms)}"
                )
        if algorithms & (RSA_ALGORITHMS | EC_ALGORITHMS):
            _check_public_key(self.jwt_public_key, algorithms)
        if self.canary_timeout_s >= self.canary_interval_s:
            raise ValueError("canary_timeout_s must be shorter than canary_interval_s")
        return self


def _check_public_key(pem: str | None, algorithms: set[str]) -> None:
    """The public key must exist and be of the family each asymmetric algorithm needs."""
    if not pem:
        raise ValueError("FLEETCAST_JWT_PUBLIC_KEY is required for RS*/PS*/ES* algorithms")
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except ValueError:
        raise ValueError("FLEETCAST_JWT_PUBLIC_KEY is not a PEM public key") from None
    if algorithms & RSA_ALGORITHMS and not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("RS*/PS* algorithms need an RSA public key")
    if algorithms & EC_ALGORITHMS and not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("ES* algorithms need an EC public key")
