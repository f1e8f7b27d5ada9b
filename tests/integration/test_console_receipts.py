"""The console's alert receipts in a real headless Chromium: Kafka -> consumer -> two gateways.

A dispatcher's console on one gateway and a field unit on the other get an
alert the dispatcher sent; the unit answers delivered, displayed and
acknowledged; the console (a recipient too) answers delivered and displayed
by itself and shows the counts as the receipt records arrive through the
consumer; its acknowledge button sends ``acknowledged`` with the typed
response, and the status then names both who acknowledged.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, expect

from fleetcast.protocol import receipts
from tests.harness.gateway import Client, make_token
from tests.harness.kafka import KafkaTopics, produce_events
from tests.integration.browser_support import browser_fixture  # noqa: F401 (registers browser)
from tests.integration.receipts_support import (
    alert,
    answer,
    connect,
    read_topic,
    two_gateways,
    warm_up,
)

pytestmark = [pytest.mark.integration, pytest.mark.browser]

STEP_MS = 20_000


async def test_console_shows_receipt_counts_and_acknowledges(
    kafka_topics: KafkaTopics,
    kafka_producer: AIOKafkaProducer,
    redis_url: str,
    tmp_path: Path,
    clients: Callable[..., Client],
    browser: Browser,
) -> None:
    async with two_gateways(kafka_topics, redis_url, tmp_path) as (gw0, gw1):
        errors: list[str] = []
        page = await browser.new_page(viewport={"width": 1600, "height": 900})
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.set_default_timeout(STEP_MS)
        token = make_token("disp-1", "org-a", ("dispatcher",), ttl=600)
        await page.goto(f"{gw0.url}/?token={token}")
        await expect(page.locator("#conn")).to_have_attribute("data-state", "connected")
        unit = await connect(clients, gw1.url, "unit-a", "org-a", "field_unit")
        await warm_up(kafka_producer, kafka_topics, [(unit, "org-a")])

        sent = alert("org-a", sent_by="disp-1", severity="critical", message="officer down")
        await produce_events(kafka_producer, kafka_topics, [sent])
        delivery = sent["event_id"]
        [got] = await unit.wait_for("alert_created")
        assert got["event_id"] == delivery
        for kind in ("delivered", "displayed"):
            assert (await answer(unit, delivery, kind))["ok"] is True

        item = page.locator(f'#receipts li[data-alert="{delivery}"]')
        await expect(item.locator(".what")).to_have_text("critical officer down")
        # both gateways' sent facts, the unit's receipts and the console's own
        await expect(item).to_have_attribute("data-sent", "2")
        await expect(item).to_have_attribute("data-delivered", "2")
        await expect(item).to_have_attribute("data-seen", "2")
        await expect(item.locator(".status")).to_have_text(
            "2 sent · 2 delivered · 2 seen · not acknowledged"
        )

        assert (await answer(unit, delivery, "acknowledged", response="en route"))["ok"] is True
        await expect(item).to_have_attribute("data-acked-by", "unit-a")
        await page.fill("#ack-response", "on my way")
        await item.locator("button.ack").click()
        await expect(item.locator("button.ack")).to_have_attribute("data-state", "acknowledged")
        await expect(item).to_have_attribute("data-acked-by", "unit-a,disp-1")
        await expect(item.locator(".status")).to_have_text(
            "2 sent · 2 delivered · 2 seen · acknowledged by unit-a (en route), disp-1 (on my way)"
        )
        assert errors == []

    # what the console sent is in Kafka as the record of its acknowledgement
    topic = kafka_topics.for_type(receipts.RECEIPT_TYPE)

    def acknowledged(docs: list[dict[str, Any]]) -> bool:
        return any(
            d["data"].get("recipient") == "disp-1" and d["data"]["kind"] == "acknowledged"
            for d in docs
        )

    docs = await read_topic(kafka_topics.bootstrap, topic, acknowledged)
    mine = sorted(
        d["data"]["kind"]
        for d in docs
        if d["data"]["delivery_id"] == delivery and d["data"].get("recipient") == "disp-1"
    )
    assert mine == ["acknowledged", "delivered", "displayed"]  # each once
