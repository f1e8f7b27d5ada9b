"""JWTs for benchmark clients, signed as the API service signs them (HS256).

Every client gets its own user id, so per-user connection limits never
refuse a benchmark client.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import jwt

#: Shared by the benchmark, the gateway and the Node reference; 32+ bytes as
#: the gateway requires of an HMAC key. A benchmark secret, not a credential.
SECRET = "fleetcast-bench-secret-0123456789abcdef"  # noqa: S105
#: Tokens outlive any benchmark run.
TTL_S = 4 * 3600


def token(
    user: str,
    org: str,
    roles: Sequence[str],
    *,
    channels: Sequence[str] = (),
    assets: Sequence[str] = (),
    secret: str = SECRET,
) -> str:
    now = int(time.time())
    claims: dict[str, object] = {
        "sub": user,
        "org_id": org,
        "roles": list(roles),
        "iat": now,
        "exp": now + TTL_S,
    }
    if channels:
        claims["channels"] = list(channels)
    if assets:
        claims["assets"] = list(assets)
    return jwt.encode(claims, secret, algorithm="HS256")
