"""The fault suite of issue 14: counting clients on two gateways, real faults, 0 lost.

Each test runs one fault of :data:`tests.faults.scenarios.FAULTS` against a
fresh stack (redis-server, the session's Kafka broker, one consumer process,
two gateway processes, ~200 events/s, ten counting clients) for about 10 s of
traffic, and asserts, per client: no expected event lost (neither delivered
nor announced by ``resync`` / ``recovered: false``), none shown twice, none
from a room the client is not in, and every client receiving events again
after the fault. ``python -m tests.faults.report`` runs the same faults for
60 s and writes docs/reliability.md.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fleetcast.devtools import kafka
from tests.faults import scenarios

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fault", scenarios.FAULTS, ids=[f.id for f in scenarios.FAULTS])
async def test_no_event_lost_or_shown_twice(
    fault: scenarios.Fault, kafka_broker: kafka.KafkaBroker, tmp_path: Path
) -> None:
    outcome = await scenarios.run(fault, kafka_broker, tmp_path, scenarios.SUITE)
    print(f"\n{scenarios.summary(outcome)}")
    totals = outcome.totals
    assert totals.expected > 1000, "too little traffic reached the clients to test anything"
    assert totals.unresumable == 0, "a client resumed without an offset: the harness is wrong"
    assert totals.refusals == 0, "a room the policy allows was refused"
    assert totals.errors == 0, "a connection attempt failed in an unexpected way"
    assert totals.misrouted == 0, "a client got an event of a room it is not in"
    assert totals.lost == 0, f"lost (neither delivered nor announced): {totals.lost_detail}"
    assert totals.duplicates == 0, "an event was shown twice"
    assert totals.recovery_s is not None, "some client received nothing after the fault"
