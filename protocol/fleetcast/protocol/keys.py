"""Every Redis key and channel fleetcast uses, with its lifetime.

Both the consumer (writer) and the gateways (readers) import these; nothing
else spells a key. Names are prefixed so one Redis can be shared.

Every per-org key carries the org as a Redis Cluster hash tag (:func:`tag`):
an org's channel, sequence, room histories, fleet snapshot, state tables and
publish fences all hash to one slot, so on a cluster one script call per org
and batch touches one shard, and the org's pub/sub (SPUBLISH/SSUBSCRIBE)
stays inside that shard. The control channel, log and revocations share the
``{control}`` tag. On one Redis the tags are just part of the names.

Changing a key name here is a wire change: gateways and consumers of one
deployment must run the same version (roll them together).
"""

from __future__ import annotations

from typing import Final

PREFIX: Final = "fleetcast"


def tag(org: str) -> str:
    """The hash tag of an org's keys: ``{org}`` (ids never hold braces, rooms.py checks)."""
    return f"{{{org}}}"


def org_of_room(room_name: str) -> str:
    """The org a room name belongs to: its last segment (``…:org:{org}`` or ``org:{org}``)."""
    return room_name.rsplit(":", 1)[-1]


# --- pub/sub ---------------------------------------------------------------


def org_channel(org: str) -> str:
    """Pub/sub channel carrying every event of one org.

    Gateways subscribe per org, and only for orgs they have local clients of,
    so a gateway's Redis ingress grows with the orgs it serves, not with the
    total traffic.
    """
    return f"{PREFIX}:{tag(org)}:events"


#: Matches every org channel (PSUBSCRIBE on one Redis: benchmarks and tools).
ORG_CHANNEL_PATTERN: Final = f"{PREFIX}:{{*}}:events"


def org_of_channel(channel: str) -> str | None:
    """The org whose :func:`org_channel` this is, or None for any other channel."""
    head, _, rest = channel.partition(":{")
    org, _, tail = rest.partition("}:")
    if head != PREFIX or tail != "events" or not org:
        return None
    return org


def org_sequence(org: str) -> str:
    """Counter of the messages published on :func:`org_channel` (INCR per message).

    Each message carries its number (wire ``seq``), so a gateway that sees
    one missing, or the count start again (a Redis that lost its data), knows
    at once that it missed events; reading it after a reconnection tells
    whether anything was published meanwhile. It never expires (one small key
    per org): a counter that is gone means Redis lost its data.
    """
    return f"{PREFIX}:{tag(org)}:seq"


# --- control: revocations and withdrawals (protocol/control.py) --------------------
#
# One slot for all three (the ``{control}`` tag), one writer (the consumer).


def control_channel() -> str:
    """Pub/sub channel every gateway listens to: control messages, each with its log id."""
    return f"{PREFIX}:{{control}}:channel"


def control_log() -> str:
    """Stream of the recent control messages: a gateway that was away catches up from it."""
    return f"{PREFIX}:{{control}}:log"


#: Control messages kept in :func:`control_log` (XADD MAXLEN ~).
CONTROL_LOG_MAXLEN: Final = 10_000


def revocations() -> str:
    """Sorted set: revoked token ids and users (control.members), scored by until when."""
    return f"{PREFIX}:{{control}}:revoked"


def canary_channel(gateway_id: str, slot_tag: str = "canary") -> str:
    """A gateway publishes to itself here to prove its subscriber is alive.

    On a cluster it needs one per shard it listens to: ``slot_tag`` is chosen
    to hash into that shard (gateway/redis/shards.py), so the canary travels
    the same shard connection as the orgs it vouches for.
    """
    return f"{PREFIX}:canary:{gateway_id}:{{{slot_tag}}}"


# --- bounded room history (Redis Streams) -----------------------------------


def history_stream(room_name: str) -> str:
    """Stream holding the recent events of one room; entry ids are the offsets."""
    return f"{PREFIX}:{tag(org_of_room(room_name))}:history:{room_name}"


#: The one field of each history entry: the envelope JSON exactly as it came
#: from Kafka (the ``event`` of a wire message). The consumer XADDs it, the
#: gateway reads it back on recovery and adds ``room`` and ``offset``.
HISTORY_FIELD: Final = "e"

#: Entries kept per room stream (XADD MAXLEN ~).
HISTORY_MAXLEN: Final = 1000
#: A room's stream expires at least this long after its last event (seconds);
#: the consumer sets its TTL with a 10 % slack, and refreshes it once per slack.
HISTORY_TTL_S: Final = 3600

# --- idempotent publish -----------------------------------------------------------


def publish_fence(cluster_id: str, org: str) -> str:
    """Hash ``{topic}:{partition}`` -> last offset published of one org's events, for one
    Kafka cluster.

    The consumer's publish script drops any record of the org at or below its
    partition's fence (a redelivery after a crash or a rebalance) and moves the
    fence in the same atomic call that publishes, so each Kafka record reaches
    Redis once. One hash per org, in the org's slot: an org's call touches one
    shard, and a call that failed on one shard is retried whole, the orgs it
    already published being fenced. Keyed by the cluster id: a new cluster (or
    a test broker) starts with no fences, and offsets of one cluster never
    hide another's records.
    """
    return f"{PREFIX}:{tag(org)}:fence:{cluster_id}"


def fenced_orgs(cluster_id: str) -> str:
    """Set of the orgs that have a :func:`publish_fence` of this Kafka cluster.

    The consumer adds an org before its first publish, so a stale fence
    (a topic deleted and created again) can be found and dropped without
    scanning every shard.
    """
    return f"{PREFIX}:{{fences}}:{cluster_id}"


#: A fence hash expires when no batch moved it for this long (seconds): a
#: cluster's consumers are gone, and their fences with them.
FENCE_TTL_S: Final = 7 * 24 * 3600

# --- fleet snapshot --------------------------------------------------------------


def fleet_positions(org: str) -> str:
    """Hash asset_id -> latest position event (JSON) of one org."""
    return f"{PREFIX}:{tag(org)}:fleet:positions"


def fleet_statuses(org: str) -> str:
    """Hash asset_id -> latest status event (JSON) of one org."""
    return f"{PREFIX}:{tag(org)}:fleet:statuses"


def fleet_last_seen(org: str) -> str:
    """Sorted set asset_id -> time of its last position or status (ms, Redis clock).

    Redis 7.0 has no per-field hash TTL, so this is how an asset ages out: the
    consumer's publish script drops the assets older than
    :data:`FLEET_ASSET_TTL_S` (and the oldest beyond :data:`FLEET_MAX_ASSETS`)
    from both hashes and from this set, in the same script that updates them.
    Readers may also ignore hash entries whose asset is absent here.
    """
    return f"{PREFIX}:{tag(org)}:fleet:last_seen"


#: An asset whose last report is older than this drops out of the snapshot (seconds).
FLEET_ASSET_TTL_S: Final = 900
#: Upper bound of assets kept per org snapshot.
FLEET_MAX_ASSETS: Final = 20_000

# --- org state: open incidents, active alerts, users' tasks (consumer/state.py) -----


def state_table(org: str, table: str) -> str:
    """Hash item id -> its merged record (JSON): ``incidents`` or ``alerts`` of one org."""
    return f"{PREFIX}:{tag(org)}:state:{table}"


def user_tasks(org: str, user: str) -> str:
    """Hash task id -> its merged record (JSON): one user's open tasks."""
    return f"{PREFIX}:{tag(org)}:state:tasks:{user}"


def task_owners(org: str) -> str:
    """Hash task id -> the user it is assigned to (a reassignment moves it)."""
    return f"{PREFIX}:{tag(org)}:state:task-owners"


#: Seconds a user room's history (the user's inbox: tasks and what is sent to them)
#: outlives its last event: much longer than other rooms', whose history a busy org
#: turns over in minutes. A unit back after hours offline resumes it in full.
INBOX_TTL_S: Final = 24 * 3600

#: Seconds a state table outlives its last change: an incident nobody touched for
#: a week is taken as forgotten, not open (a bound on what a lost close leaves).
STATE_TTL_S: Final = 7 * 24 * 3600


# --- sessions -------------------------------------------------------------------


def session(sid: str) -> str:
    """Hash describing one live connection (user, org, gateway, rooms, connected_at)."""
    return f"{PREFIX}:session:{sid}"


#: Session keys expire unless the owning gateway refreshes them (seconds).
SESSION_TTL_S: Final = 60


def gateway_heartbeat(gateway_id: str) -> str:
    """A gateway's own record (connections, orgs), refreshed while it lives."""
    return f"{PREFIX}:gateway:{gateway_id}"


GATEWAY_PATTERN: Final = f"{PREFIX}:gateway:*"
GATEWAY_TTL_S: Final = 30

# --- escalation of unacknowledged alerts (consumer/escalating.py) -------------------
#
# Written by the consumer only; every key but the org index carries the org's
# hash tag, so one org's escalation state is in its slot with its other keys.


def escalation_pending(org: str) -> str:
    """Hash delivery id -> what the deadline owner keeps of it (JSON: event, rule step done)."""
    return f"{PREFIX}:{tag(org)}:escalation:pending"


def escalation_acks(org: str) -> str:
    """Hash delivery id -> roles of each acknowledgement so far (JSON list of lists).

    Apart from :func:`escalation_pending` so that recording an acknowledgement
    never races with a step being marked done.
    """
    return f"{PREFIX}:{tag(org)}:escalation:acks"


def escalation_due(org: str) -> str:
    """Sorted set delivery id -> when its next step falls due (epoch seconds).

    A consumer claims a due entry by moving its score a lease ahead, in one
    script: however many consumers tick, each step is taken by one of them.
    """
    return f"{PREFIX}:{tag(org)}:escalation:due"


def escalation_done(org: str) -> str:
    """Sorted set delivery id -> when its escalation ended (acknowledged, or every step taken).

    Kept :data:`ESCALATION_TTL_S`: a Kafka redelivery of the original alert (a
    consumer that died before its commit) must not start a finished one again.
    """
    return f"{PREFIX}:{tag(org)}:escalation:done"


def escalation_orgs() -> str:
    """Set of the orgs with pending escalations (what a tick visits)."""
    return f"{PREFIX}:escalation:orgs"


#: A pending escalation is forgotten this long after its last write (seconds):
#: a rule's steps take minutes, not a day.
ESCALATION_TTL_S: Final = 24 * 3600
