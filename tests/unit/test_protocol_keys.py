"""Key names (protocol/keys.py): every per-org key in its org's slot, and the cluster URL."""

from __future__ import annotations

import pytest
from redis.crc import key_slot

from fleetcast.common import redisurl
from fleetcast.protocol import keys


def slot(key: str) -> int:
    return key_slot(key.encode())


def test_every_key_of_an_org_hashes_to_the_orgs_slot() -> None:
    org = "org-42"
    names = [
        keys.org_channel(org),
        keys.org_sequence(org),
        keys.history_stream(f"org:{org}"),
        keys.history_stream(f"channel:ch-3:org:{org}"),
        keys.history_stream(f"user:u-1:org:{org}"),
        keys.history_stream(f"fleet:org:{org}"),
        keys.publish_fence("kafka-1", org),
        keys.fleet_positions(org),
        keys.fleet_statuses(org),
        keys.fleet_last_seen(org),
        keys.state_table(org, "incidents"),
        keys.user_tasks(org, "u-1"),
        keys.task_owners(org),
    ]
    assert {slot(name) for name in names} == {slot(keys.tag(org))}
    assert len(set(names)) == len(names)


def test_control_keys_share_one_slot_and_orgs_spread() -> None:
    control = {slot(k) for k in (keys.control_channel(), keys.control_log(), keys.revocations())}
    assert len(control) == 1
    assert len({slot(keys.org_channel(f"org-{n}")) for n in range(100)}) > 90


def test_the_canary_channel_hashes_by_its_slot_tag() -> None:
    assert slot(keys.canary_channel("gw-1", "s7")) == slot("s7")


@pytest.mark.parametrize("org", ["org-1", "a.b_c-9", "x"])
def test_an_org_channel_names_its_org(org: str) -> None:
    assert keys.org_of_channel(keys.org_channel(org)) == org


@pytest.mark.parametrize(
    "channel",
    [
        "fleetcast:{control}:channel",
        keys.canary_channel("gw"),
        "other:{o}:events",
        "fleetcast:{}:events",
    ],
)
def test_other_channels_name_no_org(channel: str) -> None:
    assert keys.org_of_channel(channel) is None


def test_a_cluster_url_is_a_seed_list() -> None:
    target = redisurl.parse("redis+cluster://user:p%40ss@127.0.0.1:7000, localhost:7001/")
    assert target.cluster
    assert target.seeds == (("127.0.0.1", 7000), ("localhost", 7001))
    assert (target.username, target.password, target.tls) == ("user", "p@ss", False)
    assert redisurl.parse("rediss+cluster://h:1").tls
    assert not redisurl.parse("redis://127.0.0.1:6379/0").cluster


@pytest.mark.parametrize("url", ["http://h:1", "redis+cluster://h", "redis+cluster://h:1,:2"])
def test_a_bad_redis_url_is_refused_with_a_reason(url: str) -> None:
    with pytest.raises(ValueError, match=r"must start|host:port"):
        redisurl.parse(url)
