"""``python -m fleetcast.consumer``: read settings, configure logs, run.

Invalid settings print one clear message and exit with status 2 (so a
misconfigured pod fails fast in CrashLoopBackOff with the reason in its log).
A stop that overruns FLEETCAST_SHUTDOWN_DEADLINE_S exits with status 1.
"""

from __future__ import annotations

import asyncio

import uvloop

from fleetcast.common import logs
from fleetcast.common import settings as common_settings
from fleetcast.consumer import app, shutdown
from fleetcast.consumer.settings import Settings


def main() -> None:
    settings = common_settings.load(Settings, "fleetcast-consumer")
    logs.configure(settings.log_level, component="consumer")
    uvloop.install()
    deadline = shutdown.HardDeadline(settings.shutdown_deadline_s)  # armed by SIGTERM/SIGINT
    try:
        asyncio.run(app.run(settings, deadline=deadline))
    finally:
        deadline.disarm()


if __name__ == "__main__":
    main()
