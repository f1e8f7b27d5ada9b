"""Sharded pub/sub bookkeeping without Redis (gateway/redis/shards.py): slot groups, canary tags."""

from __future__ import annotations

from redis.crc import key_slot

from fleetcast.gateway.redis import shards
from fleetcast.protocol import keys


def test_channels_are_grouped_by_slot_in_first_seen_order() -> None:
    channels = [keys.org_channel(org) for org in ("a", "b", "a", "c")]
    channels[2] = keys.org_sequence("a")  # same slot as a's channel
    groups = shards.by_slot(channels)
    assert groups[0] == [keys.org_channel("a"), keys.org_sequence("a")]
    assert sum(len(g) for g in groups) == 4
    for group in groups:
        assert len({key_slot(c.encode()) for c in group}) == 1


def test_a_canary_tag_hashes_into_the_shards_slots() -> None:
    for low, high in ((0, 5460), (5461, 10922), (10923, 16383), (42, 42)):
        slots = set(range(low, high + 1))
        tag = shards.slot_tag(slots)
        assert key_slot(tag.encode()) in slots
        assert key_slot(keys.canary_channel("gw-1", tag).encode()) in slots
