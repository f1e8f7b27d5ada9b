"""Dev tokens for `make run`, tests and benchmarks (HS256, local secret only).

The claim set and signing are the CLI client's (:mod:`fleetcast.client.tokens`),
so a token minted here is exactly what ``fleetcast-client token`` prints.
Real clients get their tokens from the API service.

    python -m fleetcast.devtools.tokens --org org-metro --role dispatcher
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Sequence

from fleetcast.client import tokens

#: Bytes of a generated dev secret (the gateway wants at least 32 for HS256).
SECRET_BYTES = 32


def dev_secret() -> str:
    """A fresh random secret, long enough for the gateway's HS256 check."""
    return secrets.token_urlsafe(SECRET_BYTES)


def mint(
    secret: str,
    *,
    org: str,
    sub: str = "dev-dispatcher",
    roles: Sequence[str] = ("dispatcher",),
    channels: Sequence[str] = (),
    assets: Sequence[str] = (),
    ttl_s: float = tokens.DEFAULT_TTL_S,
    now: float | None = None,
) -> str:
    grant = tokens.Grant(sub=sub, org=org, roles=tuple(roles), channels=channels, assets=assets)
    body = tokens.claims(grant, now=time.time() if now is None else now, ttl_s=ttl_s)
    return tokens.sign(body, secret)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m fleetcast.devtools.tokens")
    parser.add_argument("--secret", required=True, help="the gateway's FLEETCAST_JWT_SECRET")
    parser.add_argument("--org", required=True)
    parser.add_argument("--sub", default="dev-dispatcher")
    parser.add_argument("--role", dest="roles", action="append")
    parser.add_argument("--channel", dest="channels", action="append", default=[])
    parser.add_argument("--asset", dest="assets", action="append", default=[])
    parser.add_argument("--ttl", type=float, default=tokens.DEFAULT_TTL_S, help="seconds")
    args = parser.parse_args(argv)
    print(tokens.WARNING, file=sys.stderr)
    print(
        mint(
            args.secret,
            org=args.org,
            sub=args.sub,
            roles=args.roles or ["dispatcher"],
            channels=args.channels,
            assets=args.assets,
            ttl_s=args.ttl,
        )
    )


if __name__ == "__main__":
    main()
