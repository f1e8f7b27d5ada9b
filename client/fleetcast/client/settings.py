"""The client's settings: the few values a CLI flag should not have to repeat.

Only the dev-token knobs come from the environment (``FLEETCAST_*``, the same
names the gateway reads), so ``--mint`` signs with exactly the secret, issuer
and audience the local gateway checks. Everything else is a command-line flag.
"""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ClientSettings(BaseSettings):
    """Built once in :func:`fleetcast.client.cli.main` and passed down."""

    model_config = SettingsConfigDict(env_prefix="FLEETCAST_", extra="ignore")

    #: HS256 shared secret used to mint dev tokens (``--mint``, ``token``).
    #: Unset means minting is impossible; a real deployment's secret belongs to
    #: the API service that issues tokens, never to this tool.
    jwt_secret: SecretStr | None = None
    #: ``iss`` claim put in minted tokens when the gateway checks one.
    jwt_issuer: str | None = None
    #: ``aud`` claim put in minted tokens when the gateway checks one.
    jwt_audience: str | None = None
