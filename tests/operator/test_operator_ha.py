"""Operator HA through a Lease: one replica reconciles, a standby takes over, measured.

A replica that stops cleanly (SIGTERM, as the kubelet does) releases the
Lease, so the standby takes it within one retry period; a crashed one
(SIGKILL) is replaced once its Lease has gone unrenewed for lease_seconds.
Both times are printed (`-s`): docs/operator.md quotes them. The reconcile
metrics are on the /metrics endpoint of the leader and the standby alike.
"""

from __future__ import annotations

import time
import urllib.request

import pytest

from tests.operator import operator_support as support

pytestmark = pytest.mark.operator

#: The defaults: FLEETCAST_OPERATOR_LEASE_SECONDS and RETRY_SECONDS.
LEASE_SECONDS = 15
RETRY_SECONDS = 2


def metrics(operator: support.Operator) -> str:
    with urllib.request.urlopen(operator.metrics_url, timeout=5) as response:  # noqa: S310 - loopback
        text: str = response.read().decode()
        return text


def sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not in the metrics")


def takeover(operators: support.Operators, standby: support.Operator, generation: int) -> float:
    """Seconds until the standby holds the Lease and has reconciled ``generation``."""
    started = time.monotonic()
    support.eventually(
        "the standby holds the Lease",
        lambda: operators.holds_lease(standby),
        LEASE_SECONDS + 30,
        logs=standby.tail,
    )
    support.eventually(
        f"the standby reconciles generation {generation}",
        lambda: [
            m
            for m in standby.reconciled(operators.namespace, "fleet")
            if f"generation {generation}" in m
        ],
        logs=standby.tail,
    )
    return time.monotonic() - started


def test_a_standby_takes_over_at_once_after_a_clean_stop_and_within_a_lease_after_a_crash(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    first = support.start_ready(operators)
    second = operators.start(leader=False)
    time.sleep(3)
    assert not second.reconciled(namespace, "fleet"), "the standby must not reconcile"
    assert sample(metrics(first), "fleetcast_operator_leader") == 1
    assert sample(metrics(second), "fleetcast_operator_leader") == 0
    assert sample(metrics(first), "fleetcast_operator_reconcile_duration_seconds_count") >= 1

    support.apply(cluster, support.fleetbroadcast(namespace, consumer={"replicas": 2}))
    stopped = time.monotonic()
    first.stop()
    takeover(operators, second, 2)
    clean = time.monotonic() - stopped
    print(f"takeover after SIGTERM: {clean:.1f} s")
    assert clean < RETRY_SECONDS + 20
    support.eventually(
        "Ready under the standby",
        lambda: support.ready(cluster, namespace, "fleet"),
        logs=second.tail,
    )

    third = operators.start(leader=False)
    support.apply(cluster, support.fleetbroadcast(namespace, consumer={"replicas": 3}))
    crashed = time.monotonic()
    second.kill()
    takeover(operators, third, 3)
    crash = time.monotonic() - crashed
    print(f"takeover after SIGKILL: {crash:.1f} s (lease {LEASE_SECONDS} s)")
    assert LEASE_SECONDS - RETRY_SECONDS <= crash < LEASE_SECONDS + 30
    support.eventually(
        "Ready under the third", lambda: support.ready(cluster, namespace, "fleet"), logs=third.tail
    )
