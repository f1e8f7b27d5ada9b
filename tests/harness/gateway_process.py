"""The gateway as a process, and the tokens it accepts: nothing of the gateway's code.

- :func:`make_token` mints a JWT with the test secret :data:`SECRET`.
- :class:`GatewayProcess` runs ``python -m fleetcast.gateway`` with FLEETCAST_*
  variables (signals, exit codes, several gateways side by side).

Tests that run a whole stack (the fault suite, the storm) use only these, so
they see the gateway as a client and an operator do, and are untouched by how
its modules are laid out. :mod:`tests.harness.gateway` re-exports them.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import aiohttp
import jwt

from fleetcast.devtools.ports import free_port

SECRET = "fleetcast-test-secret-of-at-least-32-bytes"  # noqa: S105 (tests only)
#: Default token lifetime (seconds). Parametrized tests mint their tokens when
#: the session is collected, so a token must outlive the whole run of
#: ``make test`` (17 min on the 2-core machine), not just its own test.
TOKEN_TTL_S = 3600.0


def make_token(
    sub: str = "u1",
    org: str = "o1",
    roles: tuple[str, ...] | list[str] | str = ("dispatcher",),
    *,
    ttl: float = TOKEN_TTL_S,
    secret: str = SECRET,
    algorithm: str = "HS256",
    **claims: Any,
) -> str:
    payload: dict[str, Any] = {"sub": sub, "org_id": org}
    payload["roles"] = roles if isinstance(roles, str) else list(roles)  # a str tests bad input
    payload["exp"] = int(time.time() + ttl) if ttl >= 2 else time.time() + ttl
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm=algorithm)


class GatewayProcess:
    """``python -m fleetcast.gateway`` with FLEETCAST_* variables; logs to a file."""

    def __init__(self, env: Mapping[str, str], log_dir: Path) -> None:
        self.port = int(env.get("FLEETCAST_PORT") or free_port())
        self.env = {**os.environ, "FLEETCAST_PORT": str(self.port), **env}
        self.log_path = log_dir / f"gateway-{self.port}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> GatewayProcess:
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "fleetcast.gateway"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        return self

    async def wait_ready(self, within: float = 60.0) -> None:
        deadline = time.monotonic() + within
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                assert self.proc is not None
                if self.proc.poll() is not None:
                    raise AssertionError(f"gateway exited: {self.log()}")
                try:
                    async with http.get(f"{self.url}/ready") as response:
                        if response.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError(f"gateway not ready in {within}s: {self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:] if self.log_path.exists() else ""

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        return self.proc.wait(10)
