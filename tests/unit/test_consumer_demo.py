"""The demo fleet `make run` and the benchmarks feed the consumer with."""

from __future__ import annotations

import itertools
from collections import Counter

from fleetcast.devtools import demo
from fleetcast.protocol import events, routing


def test_the_demo_produces_all_fourteen_types_as_valid_routable_envelopes() -> None:
    table = routing.RoutingTable.default()
    seen: Counter[str] = Counter()
    for doc in itertools.islice(demo.Fleet(orgs=3, units_per_org=10, seed=1), 3000):
        envelope = events.validate_envelope(doc)
        seen[envelope.event_type] += 1
        if envelope.event_type not in {"task_updated", "task_completed"}:
            assert routing.route(envelope, table), doc
    assert set(seen) == events.DOMAIN_TYPES
    assert seen["asset_position_updated"] > 0.7 * sum(seen.values())


def test_the_demo_is_deterministic_per_seed_and_spread_over_orgs() -> None:
    def types(seed: int) -> list[str]:
        return [e["event_type"] for e in itertools.islice(demo.Fleet(seed=seed), 200)]

    assert types(3) == types(3)
    orgs = {e["organization_id"] for e in itertools.islice(demo.Fleet(orgs=4), 400)}
    assert orgs == {"org-metro", "org-harbor", "org-valley", "org-lakes"}
