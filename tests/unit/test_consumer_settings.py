"""Consumer settings: FLEETCAST_* parsing, validation, and exit 2 when invalid."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from pydantic import ValidationError

from fleetcast.consumer.settings import Settings
from fleetcast.protocol import events


def test_defaults_follow_the_design() -> None:
    settings = Settings(_env_file=None)
    assert settings.kafka_bootstrap_servers == "127.0.0.1:9092"
    assert settings.kafka_topics == list(events.DEFAULT_TOPICS)
    assert settings.kafka_dlq_topic == "fleet.dlq"
    assert settings.consumer_port == 8081
    assert settings.kafka_client_options() == {
        "bootstrap_servers": "127.0.0.1:9092",
        "client_id": "fleetcast-consumer",
        "security_protocol": "PLAINTEXT",
    }


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLEETCAST_KAFKA_TOPICS", "a, b")
    monkeypatch.setenv("FLEETCAST_ROUTING_OVERRIDES", '{"task_updated": ["user"]}')
    monkeypatch.setenv("FLEETCAST_BATCH_MAX", "250")
    settings = Settings()
    assert settings.kafka_topics == ["a", "b"]
    assert settings.batch_max == 250
    assert settings.routing_table().kinds["task_updated"] == ("user",)


def test_sasl_settings_are_passed_through() -> None:
    settings = Settings(
        kafka_security_protocol="SASL_PLAINTEXT",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="svc",
        kafka_sasl_password="pw",  # noqa: S106 (a test value)
    )
    options = settings.kafka_client_options()
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == ("svc", "pw")
    assert "pw" not in repr(settings)


@pytest.mark.parametrize(
    "bad",
    [
        {"routing_overrides": {"nope": ["org"]}},
        {"batch_max": 0},
        {"kafka_topics": []},
        {"kafka_dlq_topic": "fleet.assets"},
        {"kafka_security_protocol": "SASL_SSL"},
        {"log_level": "LOUD"},
        {"shutdown_timeout_s": 25.0},  # the batch in hand would outlast the hard deadline
        {"kafka_dlq_failure_policy": "drop"},
        {"kafka_dlq_max_record_bytes": 1000},
        {"stall_after_s": 0},
    ],
)
def test_invalid_values_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]


def test_invalid_settings_exit_2_with_one_clear_message() -> None:
    env = {
        **os.environ,
        "FLEETCAST_ROUTING_OVERRIDES": '{"nope": ["org"]}',
        "FLEETCAST_BATCH_MAX": "x",
    }
    done = subprocess.run(
        [sys.executable, "-m", "fleetcast.consumer"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "FLEETCAST_ROUTING_OVERRIDES" in done.stderr
    assert "FLEETCAST_BATCH_MAX" in done.stderr
    assert "Traceback" not in done.stderr
