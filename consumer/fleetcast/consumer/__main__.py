"""``python -m fleetcast.consumer``: read settings, configure logs, run.

Invalid settings print one clear message and exit with status 2 (so a
misconfigured pod fails fast in CrashLoopBackOff with the reason in its log).
A stop that overruns FLEETCAST_SHUTDOWN_DEADLINE_S exits with status 1.
"""

from __future__ import annotations

import asyncio
import sys

import uvloop
from pydantic import ValidationError

from fleetcast.common import logs
from fleetcast.consumer import app, shutdown
from fleetcast.consumer.settings import Settings


def describe(error: ValidationError) -> str:
    """One line per bad field, named as the environment variable that set it."""
    lines = []
    for item in error.errors():
        where = "_".join(str(part) for part in item["loc"]).upper()
        name = f"FLEETCAST_{where}" if where else "settings"
        lines.append(f"  {name}: {item['msg']}")
    return "invalid consumer settings:\n" + "\n".join(lines)


def main() -> None:
    try:
        settings = Settings()
    except ValidationError as exc:
        print(describe(exc), file=sys.stderr)
        sys.exit(2)
    logs.configure(settings.log_level, component="consumer")
    uvloop.install()
    deadline = shutdown.HardDeadline(settings.shutdown_deadline_s)  # armed by SIGTERM/SIGINT
    try:
        asyncio.run(app.run(settings, deadline=deadline))
    finally:
        deadline.disarm()


if __name__ == "__main__":
    main()
