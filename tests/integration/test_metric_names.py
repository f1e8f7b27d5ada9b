"""Every metric the chart's alert rules and Grafana dashboard name is one the services export.

A real gateway process and a real consumer (on real Kafka and Redis) are
scraped once events have passed through; the exposed sample names (a
counter's ``_total``, a histogram's ``_bucket``/``_sum``/``_count``, also
for labelled families that have no child yet) must include every
``fleetcast_*`` name of every rule expression and dashboard query.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

import aiohttp
import orjson
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.gateway import SECRET, Client, GatewayProcess, make_token, wait_until
from tests.harness.kafka import KafkaTopics, consumer_settings, running_consumer

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
ALERTS = ROOT / "charts" / "fleetcast" / "files" / "alerts.yaml"
DASHBOARDS = sorted((ROOT / "charts" / "fleetcast" / "files" / "dashboards").glob("*.json"))
NAME = re.compile(r"\bfleetcast_[a-z0-9_]+\b")
SUFFIXES = {
    "counter": ("_total",),
    "histogram": ("_bucket", "_sum", "_count"),
    "summary": ("_sum", "_count", ""),
}


def exposed(text: str) -> set[str]:
    """Sample names a scrape of ``text`` gives Prometheus (families without samples too)."""
    names = set()
    for family in text_string_to_metric_families(text):
        names |= {family.name + s for s in SUFFIXES.get(family.type, ("",))}
        names |= {sample.name for sample in family.samples}
    return names


def queried() -> dict[str, set[str]]:
    """fleetcast metric names of each rule and dashboard query, by where they are."""
    found: dict[str, set[str]] = {}
    for group in yaml.safe_load(ALERTS.read_text())["groups"]:
        for rule in group["rules"]:
            found[f"alert {rule['alert']}"] = set(NAME.findall(rule["expr"]))
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                found[f"{path.name}: {panel['title']}"] = set(NAME.findall(target["expr"]))
    return found


async def metrics_text(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{url}/metrics") as response:
        assert response.status == 200
        return await response.text()


def test_the_names_are_found_in_queries() -> None:
    found = queried()
    assert "fleetcast_gateway_delivery_latency_seconds_bucket" in set().union(*found.values())
    assert all(found.values()), [where for where, names in found.items() if not names]


async def test_every_queried_metric_is_exported(
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
    tmp_path: Path,
    clients: Callable[..., Client],
) -> None:
    gateway = GatewayProcess(
        {"FLEETCAST_JWT_SECRET": SECRET, "FLEETCAST_REDIS_URL": redis_url}, tmp_path
    ).start()
    try:
        settings = consumer_settings(kafka_topics, redis_url)
        async with running_consumer(settings):
            await gateway.wait_ready(within=60)
            client = clients(gateway.url)
            assert await client.connect(make_token("disp-1", "org-m", ("dispatcher",), ttl=600))
            doc = {
                "event_id": "m-1",
                "event_type": "alert_created",
                "organization_id": "org-m",
                "occurred_at": "2026-11-25T18:00:00Z",
                "data": {"alert_id": "al-1"},
            }
            topic = kafka_topics.for_type("alert_created")
            await kafka_producer.send_and_wait(topic, orjson.dumps(doc), key=b"org-m")
            await kafka_producer.send_and_wait(topic, b"not json", key=b"org-m")
            await wait_until(
                lambda: any(n == "alert_created" for n, _ in client.events), 30.0, "the alert"
            )
            names = exposed(await metrics_text(gateway.url))
            names |= exposed(await metrics_text(f"http://127.0.0.1:{settings.consumer_port}"))
    finally:
        gateway.stop()
    missing = {where: sorted(q - names) for where, q in queried().items() if q - names}
    assert not missing, missing
