"""The publish script's input, built without Redis: layout, wire items, fences, TTL refresh."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from redis.crc import key_slot

from fleetcast.consumer import encoding, processing, publishing, state
from fleetcast.protocol import keys, routing, wire

ROUTER = processing.Router(routing.RoutingTable.default())
LIMITS = encoding.Limits()
CLUSTER = "c-1"


class Rec:
    def __init__(self, value: bytes, offset: int, partition: int = 0, topic: str = "t") -> None:
        self.value, self.offset, self.partition, self.topic = value, offset, partition, topic
        self.key = None


def routed(
    event_type: str, offset: int = 0, partition: int = 0, org: str = "org-1", **data: Any
) -> processing.Routed:
    doc = {
        "event_id": f"e-{offset}",
        "event_type": event_type,
        "organization_id": org,
        "occurred_at": "2026-11-25T18:00:00Z",
        "data": data,
    }
    records = processing.group([Rec(orjson.dumps(doc), offset, partition)])
    (item,) = processing.prepare(records, ROUTER).routed
    return item


def command(call: encoding.OrgCall) -> list[bytes]:
    """The words of a packed command (a small RESP reader)."""
    packed = call.packed
    assert packed.startswith(b"*")
    end = packed.index(b"\r\n")
    count, cursor, out = int(packed[1:end]), end + 2, []
    for _ in range(count):
        assert packed[cursor : cursor + 1] == b"$"
        end = packed.index(b"\r\n", cursor)
        size = int(packed[cursor + 1 : end])
        out.append(packed[end + 2 : end + 2 + size])
        cursor = end + 2 + size + 2
    assert cursor == len(packed), "trailing bytes"
    return out


def split(call: encoding.OrgCall) -> tuple[list[bytes], list[bytes]]:
    """The KEYS and ARGV of a packed EVALSHA."""
    words = command(call)
    assert words[:2] == [b"EVALSHA", encoding.SCRIPT_SHA.encode()]
    nkeys = int(words[2])
    return words[3 : 3 + nkeys], words[3 + nkeys :]


def only(call: encoding.Call) -> encoding.OrgCall:
    (org,) = call.orgs
    return org


@pytest.mark.parametrize(
    ("event_type", "data"),
    [
        ("asset_position_updated", {"asset_id": "u-1"}),  # one history room, plus the fleet
        ("incident_created", {"incident_id": "i-1", "channel_id": "c-1"}),  # three
        ("alert_created", {}),  # the org room only
    ],
)
def test_the_routes_item_pieces_joined_with_the_ids_give_the_wire_item(
    event_type: str, data: dict[str, Any]
) -> None:
    item = routed(event_type, **data)
    ids = [f"1732550400000-{n}" for n in range(len(item.history))]
    pieces = wire.item_pieces(item.route.rooms, item.route.history)
    assert len(pieces) == len(ids) + 1
    joined = pieces[0] + b"".join(
        i.encode() + piece for i, piece in zip(ids, pieces[1:], strict=True)
    )
    made = joined + item.envelope_json + b"}"
    expected = wire.encode(
        "org-1",
        [
            wire.RoutedEvent(
                item.rooms,
                dict(zip(item.history, ids, strict=True)),
                orjson.loads(item.envelope_json),
            )
        ],
    )
    assert b'"events":[' + made + b"]}" in expected


def test_the_arguments_follow_the_documented_layout() -> None:
    items = [
        routed("asset_position_updated", 10, asset_id="u-1", lat=1),
        routed("alert_created", 11),
        routed("asset_position_updated", 12, asset_id="u-1", lat=2),
        routed("asset_status_changed", 5, partition=1, asset_id="u-2", status="busy"),
    ]
    call = only(encoding.Encoder(LIMITS, CLUSTER, "SPUBLISH").encode(items, now=100.0))
    assert call.org == "org-1"
    got_keys, got = split(call)
    streams = [
        keys.history_stream(room).encode()
        for room in ("asset:u-1:org:org-1", "org:org-1", "asset:u-2:org:org-1")
    ]
    assert got_keys == [
        keys.publish_fence(CLUSTER, "org-1").encode(),
        keys.org_channel("org-1").encode(),
        keys.org_sequence("org-1").encode(),
        keys.fleet_positions("org-1").encode(),
        keys.fleet_statuses("org-1").encode(),
        keys.fleet_last_seen("org-1").encode(),
        *streams,
    ]
    slack = int(LIMITS.history_ttl_s * encoding.HISTORY_TTL_SLACK)
    assert got[:14] == [
        b"e",
        b"%d" % LIMITS.history_maxlen,
        b"%d" % (LIMITS.history_ttl_s + slack),
        b"%d" % LIMITS.fleet_asset_ttl_s,
        b"%d" % LIMITS.fleet_max_assets,
        b"%d" % LIMITS.events_per_message,
        b"%d" % LIMITS.fence_ttl_s,
        wire.ITEM_SEPARATOR,
        wire.MESSAGE_TAIL,
        wire.MESSAGE_TIME,
        wire.MESSAGE_EVENTS,
        b"SPUBLISH",
        b"%d" % (LIMITS.inbox_ttl_s + slack),
        b'{"v":1,"org":"org-1","seq":',
    ]
    # partitions: count, then fence field, first and last offset of the org's events
    assert got[14:21] == [b"2", b"t:0", b"10", b"12", b"t:1", b"5", b"5"]
    assert got[21:23] == [b"0", b"4"]  # no state change; four events
    first = got[23:28]  # k = 1, its stream, two pieces, envelope
    assert first[:2] == [b"1", keys.history_stream("asset:u-1:org:org-1").encode()]
    assert first[4] == items[0].envelope_json
    # then the streams whose TTL to set (no inbox among them), the snapshot by event
    # number: the latest position of u-1 only (events 1 and 3 are its), and u-2's
    # status (event 4)
    assert got[-11:-6] == [b"3", *streams, b"0"]
    assert got[-6:] == [b"1", b"u-1", b"3", b"1", b"u-2", b"4"]


def test_a_user_rooms_history_is_an_inbox_kept_longer() -> None:
    item = routed("task_assigned", 1, task_id="t-1", user_id="usr-1", incident_id="i-1")
    _, got = split(only(encoding.Encoder(LIMITS, CLUSTER).encode([item], now=100.0)))
    incident, user = (
        keys.history_stream(room).encode()
        for room in ("incident:i-1:org:org-1", "user:usr-1:org:org-1")
    )
    at = got.index(item.envelope_json) + 1
    assert got[at : at + 4] == [b"1", incident, b"1", user]


def test_a_batch_is_one_call_per_org_each_in_its_orgs_slot() -> None:
    items = [routed("alert_created", n, org=f"org-{n % 3}") for n in range(9)]
    call = encoding.Encoder(LIMITS, CLUSTER).encode(items, now=1.0)
    assert [org.org for org in call.orgs] == ["org-0", "org-1", "org-2"]
    for org in call.orgs:
        assert [item.offset for item in org.routed] == [
            n for n in range(9) if n % 3 == int(org.org[-1])
        ]
        got_keys, got = split(org)
        tags = {key.decode().split("{")[1].split("}")[0] for key in got_keys}
        assert tags == {org.org}  # one hash tag: one slot
        assert got[11] == b"PUBLISH"


def test_the_state_keys_a_call_changes_are_declared_and_in_the_orgs_slot() -> None:
    changes: list[tuple[str, dict[str, Any]]] = [
        ("incident_created", {"incident_id": "i-1"}),
        ("alert_created", {"alert_id": "a-1"}),
        ("task_assigned", {"task_id": "t-1", "user_id": "usr-1"}),
        ("task_completed", {"task_id": "t-2", "user_id": "usr-2"}),
    ]
    items = []
    for offset, (event_type, data) in enumerate(changes):
        item = routed(event_type, offset, **data)
        item.state = state.ops(event_type, data, state.Rules())
        items.append(item)
    got_keys, got = split(only(encoding.Encoder(LIMITS, CLUSTER).encode(items, now=1.0)))
    declared = {key.decode() for key in got_keys}
    assert {
        keys.state_table("org-1", "incidents"),
        keys.state_table("org-1", "alerts"),
        keys.task_owners("org-1"),
        keys.user_tasks("org-1", "usr-1"),
        keys.user_tasks("org-1", "usr-2"),  # a completion names no owner: its room's user
    } <= declared
    # an owner on record the call did not declare is made from this prefix: the org's slot
    prefix = got[got.index(keys.task_owners("org-1").encode()) + 1].decode()
    assert prefix == keys.user_tasks("org-1", "")
    slot = key_slot(keys.publish_fence(CLUSTER, "org-1").encode())
    assert {key_slot(key.encode()) for key in (*declared, prefix + "usr-9")} == {slot}


def refreshed(call: encoding.Call) -> list[str]:
    return sorted(only(call).refreshed)


def test_a_stream_ttl_is_set_once_per_slack_and_again_after_a_failure() -> None:
    encoder = encoding.Encoder(LIMITS, CLUSTER)
    slack = LIMITS.history_ttl_s * encoding.HISTORY_TTL_SLACK
    items = [routed("asset_position_updated", asset_id="u-1")]
    stream = keys.history_stream("asset:u-1:org:org-1")
    first = encoder.encode(items, now=1000.0)
    assert refreshed(first) == [stream]
    assert refreshed(encoder.encode(items, now=1001.0)) == [stream]  # not confirmed yet
    encoder.confirm(only(first), first.at)
    assert refreshed(encoder.encode(items, now=1000.0 + slack - 1)) == []
    assert refreshed(encoder.encode(items, now=1000.0 + slack)) == [stream]
    encoder.forget_refreshes()  # Redis failed: it may have lost the TTLs
    assert refreshed(encoder.encode(items, now=1001.0)) == [stream]


def test_unfenced_keeps_what_lies_above_each_partitions_fence() -> None:
    items = [routed("alert_created", n, partition=n % 2) for n in range(6)]
    fences = publishing.fences_of(items, [b"2", None])  # partition 0 up to 2; 1 has none
    assert fences == {("t", 0): 2}
    assert [i.offset for i in publishing.unfenced(items, fences)] == [1, 3, 4, 5]


def test_a_traced_event_gets_its_own_pieces_with_its_traceparent() -> None:
    traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    plain, traced = routed("alert_created", 1), routed("alert_created", 2)
    traced.traceparent = traceparent
    _, got = split(only(encoding.Encoder(LIMITS, CLUSTER).encode([plain, traced], now=1.0)))
    first_pieces = [arg for arg in got if arg.startswith(b'{"rooms":')]
    assert len(first_pieces) == 2
    assert b'"tp"' not in first_pieces[0]  # the route's shared pieces stay untraced
    assert b',"tp":"' + traceparent.encode() + b'",' in first_pieces[1]
