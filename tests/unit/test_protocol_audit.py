"""The delivery record's hash chain: any edit, drop or reordering is found."""

from __future__ import annotations

import dataclasses

from fleetcast.protocol import audit


def records(org: str, n: int) -> list[dict[str, object]]:
    return [
        {"event_id": f"{org}-{i}", "organization_id": org, "data": {"kind": "delivered", "n": i}}
        for i in range(n)
    ]


def test_an_untouched_chain_verifies_and_hashes_are_stable() -> None:
    links = audit.chain(records("org-a", 5))
    assert audit.verify(links) is None
    assert links[0].prev == audit.GENESIS
    assert [link.hash for link in links] == [link.hash for link in audit.chain(records("org-a", 5))]
    # key order does not matter (canonical JSON), content does
    reordered = {"data": {"n": 0, "kind": "delivered"}, "organization_id": "org-a",
                 "event_id": "org-a-0"}  # fmt: skip
    assert audit.digest(audit.GENESIS, reordered) == links[0].hash


def test_an_edited_record_breaks_the_chain_at_that_record() -> None:
    links = audit.chain(records("org-a", 5))
    forged = {**links[2].record, "data": {"kind": "acknowledged", "n": 2}}
    links[2] = dataclasses.replace(links[2], record=forged)
    assert audit.verify(links) == 2


def test_a_dropped_or_moved_record_is_found() -> None:
    links = audit.chain(records("org-a", 5))
    assert audit.verify(links[:2] + links[3:]) == 2
    assert audit.verify([links[1], links[0], *links[2:]]) == 0


def test_a_rehashed_forgery_still_fails_against_the_published_head() -> None:
    links = audit.chain(records("org-a", 3))
    forged = audit.chain(
        [{**links[0].record, "data": {"kind": "acknowledged"}}, *records("org-a", 3)[1:]]
    )
    assert audit.verify(forged) is None  # self-consistent...
    assert forged[-1].hash != links[-1].hash  # ...but its head differs from the one kept


def test_chains_are_per_org_and_continue_from_a_given_hash() -> None:
    mixed = [r for pair in zip(records("org-a", 3), records("org-b", 3), strict=True) for r in pair]
    chains = audit.chain_per_org(mixed)
    assert set(chains) == {"org-a", "org-b"}
    assert all(audit.verify(links) is None for links in chains.values())
    head = chains["org-a"][-1].hash
    more = audit.chain(records("org-a", 2), prev=head)
    assert audit.verify(more, start=head) is None
    assert audit.verify(more) == 0
