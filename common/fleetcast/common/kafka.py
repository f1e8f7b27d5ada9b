"""How a component connects to Kafka: the security settings it shares, and aiokafka's options.

The consumer (events in, dead letters out) and the gateway (control messages
and receipts out) reach the same brokers the same way; their settings
classes both take these fields (environment prefix ``FLEETCAST_``).
"""

from __future__ import annotations

import ssl
from typing import Any, Literal, Self

from aiokafka.helpers import create_ssl_context
from pydantic import SecretStr, model_validator
from pydantic_settings import BaseSettings


class KafkaSecurity(BaseSettings):
    """TLS and SASL for every Kafka client of a process."""

    #: PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL, passed to aiokafka as is.
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = "PLAIN"
    kafka_sasl_username: str | None = None
    kafka_sasl_password: SecretStr | None = None
    #: CA bundle, client certificate and key (PEM files) for SSL listeners.
    kafka_ssl_cafile: str | None = None
    kafka_ssl_certfile: str | None = None
    kafka_ssl_keyfile: str | None = None
    kafka_ssl_password: SecretStr | None = None

    @model_validator(mode="after")
    def _sasl_needs_a_user(self) -> Self:
        if self.kafka_security_protocol.startswith("SASL") and not self.kafka_sasl_username:
            raise ValueError("FLEETCAST_KAFKA_SASL_USERNAME is required for SASL protocols")
        return self

    def kafka_options(self, bootstrap_servers: str, client_id: str) -> dict[str, Any]:
        """aiokafka's connection options for a client of these brokers."""
        options: dict[str, Any] = {
            "bootstrap_servers": bootstrap_servers,
            "client_id": client_id,
            "security_protocol": self.kafka_security_protocol,
        }
        if self.kafka_security_protocol.startswith("SASL"):
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            password = self.kafka_sasl_password
            options["sasl_plain_password"] = password.get_secret_value() if password else None
        if self.kafka_security_protocol.endswith("SSL"):
            options["ssl_context"] = self._ssl_context()
        return options

    def _ssl_context(self) -> ssl.SSLContext:
        password = self.kafka_ssl_password
        context: ssl.SSLContext = create_ssl_context(
            cafile=self.kafka_ssl_cafile,
            certfile=self.kafka_ssl_certfile,
            keyfile=self.kafka_ssl_keyfile,
            password=password.get_secret_value() if password else None,
        )
        return context
