"""The fault suite's traffic and clients (tests.harness.traffic, .stack): pure, no server."""

from __future__ import annotations

from collections import Counter

import orjson
import pytest

from fleetcast.protocol import events, rooms
from tests.faults.scenarios import SIZE_LIMIT_BYTES, oversized_envelope
from tests.harness.stack import client_specs, false_seconds
from tests.harness.traffic import Mix, Model, targets

MODEL = Model()


def test_the_mix_is_valid_envelopes_with_unique_ids_of_every_type() -> None:
    mix = Mix(MODEL, run="t", seed=3)
    docs = [mix.next(1_764_000_000.0) for _ in range(5000)]
    for doc in docs:
        events.decode_envelope(orjson.dumps(doc))
    assert len({doc["event_id"] for doc in docs}) == len(docs)
    assert set(Counter(doc["event_type"] for doc in docs)) == events.DOMAIN_TYPES
    assert {doc["organization_id"] for doc in docs} == set(MODEL.orgs)
    assert docs[0]["occurred_at"] == "2025-11-24T16:00:00.000Z"


def test_targets_leave_the_fleet_room_out() -> None:
    doc = Mix(MODEL, run="t").envelope(
        "org-a", "asset_status_changed", {"asset_id": "unit-01"}, 0.0
    )
    assert targets(doc) == {"asset:unit-01:org:org-a", "org:org-a"}


@pytest.mark.parametrize(
    "name",
    [
        "org:org-b",
        "user:user-03:org:org-b",
        "channel:ch-2:org:org-b",
        "incident:inc-4:org:org-b",
        "asset:unit-07:org:org-b",
    ],
)
def test_a_prime_reaches_its_room_only(name: str) -> None:
    doc = Mix(MODEL, run="t").prime(rooms.parse_room(name), 0.0)
    assert targets(doc) == {name}


def test_every_client_room_is_a_room_of_its_org_and_field_units_may_join_theirs() -> None:
    specs = client_specs(MODEL, 10)
    assert {spec.home for spec in specs} == {0, 1}
    assert {spec.org for spec in specs} == set(MODEL.orgs)
    assert len({(spec.org, spec.user) for spec in specs}) == len(specs)
    for spec in specs:
        full = {spec.full_name(room) for room in spec.rooms}
        assert all(rooms.parse_room(name).org == spec.org for name in full)
        if spec.roles == ("field_unit",):
            listed = {f"channel:{c}" for c in spec.channels} | {f"asset:{a}" for a in spec.assets}
            assert set(spec.extra_rooms) <= listed


def test_the_size_limit_record_is_exactly_that_size_and_over_the_event_limit() -> None:
    value = oversized_envelope("org-a")
    assert len(value) == SIZE_LIMIT_BYTES
    with pytest.raises(events.EnvelopeError) as caught:
        events.decode_envelope(value)
    assert caught.value.reason == "oversized"


def test_not_ready_time_counts_each_false_sample_until_the_next() -> None:
    samples = [(0.0, True), (1.0, False), (1.5, False), (2.5, True), (3.0, False)]
    assert false_seconds(samples) == 1.5
    assert false_seconds([]) == 0
