"""Dev tokens: HS256 JWTs signed with the local shared secret, for testing only.

Production tokens come from the API service. This exists so a developer can
point the CLI or the console at ``make run`` (or a test gateway) without one.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

ALGORITHM: Final = "HS256"
DEFAULT_TTL_S: Final = 3600
WARNING: Final = (
    "fleetcast-client: this is a DEV token signed with the local shared secret. "
    "For testing only: real clients get their tokens from the API service."
)


@dataclass(frozen=True, slots=True)
class Grant:
    """Who the token speaks for: the claims of DESIGN.md's client protocol."""

    sub: str
    org: str
    roles: Sequence[str] = ("dispatcher",)
    channels: Sequence[str] = field(default_factory=tuple)
    assets: Sequence[str] = field(default_factory=tuple)


def claims(
    grant: Grant,
    *,
    now: float,
    ttl_s: float = DEFAULT_TTL_S,
    issuer: str | None = None,
    audience: str | None = None,
) -> dict[str, Any]:
    """The claim set of one token; pure, so tests pin ``now``."""
    body: dict[str, Any] = {
        "sub": grant.sub,
        "org_id": grant.org,
        "roles": list(grant.roles),
        "iat": int(now),
        "exp": int(now + ttl_s),
    }
    if grant.channels:
        body["channels"] = list(grant.channels)
    if grant.assets:
        body["assets"] = list(grant.assets)
    if issuer:
        body["iss"] = issuer
    if audience:
        body["aud"] = audience
    return body


def sign(body: dict[str, Any], secret: str) -> str:
    return jwt.encode(body, secret, algorithm=ALGORITHM)


def expiry(token: str) -> float | None:
    """The token's ``exp`` without verifying it: only to schedule a refresh."""
    try:
        exp = jwt.decode(token, options={"verify_signature": False}).get("exp")
    except jwt.PyJWTError:
        return None
    return float(exp) if isinstance(exp, int | float) else None
