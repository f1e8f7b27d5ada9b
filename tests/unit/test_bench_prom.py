"""Reading Prometheus text: samples, sums over labels, what moved between scrapes."""

from __future__ import annotations

from bench import prom

TEXT = """# HELP fleetcast_gateway_disconnects_total Closed connections by reason
# TYPE fleetcast_gateway_disconnects_total counter
fleetcast_gateway_disconnects_total{reason="client"} 3.0
fleetcast_gateway_disconnects_total{reason="slow_consumer"} 2.0
fleetcast_gateway_canary_failures_total 1.0
fleetcast_gateway_redis_messages_total{org="org-1"} 10.0
"""


def test_samples_keep_labels_and_skip_comments() -> None:
    found = prom.samples(TEXT)
    assert found['fleetcast_gateway_disconnects_total{reason="slow_consumer"}'] == 2.0
    assert len(found) == 4


def test_total_sums_over_labels_only_of_that_name() -> None:
    found = prom.samples(TEXT)
    assert prom.total(found, "fleetcast_gateway_disconnects_total") == 5.0
    assert prom.total(found, "fleetcast_gateway_canary_failures_total") == 1.0
    assert prom.total(found, "fleetcast_gateway_canary") == 0.0


def test_changes_lists_what_moved() -> None:
    before = prom.samples(TEXT)
    after = dict(before)
    after["fleetcast_gateway_canary_failures_total"] = 4.0
    after["fleetcast_gateway_redis_reconnects_total"] = 1.0
    assert prom.changes(before, after) == {
        "fleetcast_gateway_canary_failures_total": 3.0,
        "fleetcast_gateway_redis_reconnects_total": 1.0,
    }
