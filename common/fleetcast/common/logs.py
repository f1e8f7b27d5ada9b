"""Structured JSON logs, one line per event, for every fleetcast process.

structlog renders our own events; the stdlib records of libraries (aiohttp,
aiokafka, kopf, socketio) go through the same renderer, so a log shipper sees
one format. Secrets never reach a log call: callers log ids and codes, never
tokens, and :func:`redact` masks the keys that could carry one anyway.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, MutableMapping
from typing import Any

import orjson
import structlog

SECRET_KEYS = frozenset({"token", "authorization", "password", "secret", "jwt", "auth"})


def redact(_: Any, __: str, event_dict: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """Mask any field whose name suggests a credential."""
    for key in event_dict:
        if key.lower() in SECRET_KEYS:
            event_dict[key] = "[redacted]"
    return event_dict


def _dumps(obj: Any, default: Any = None) -> str:
    return orjson.dumps(obj, default=default or str).decode()


def configure(level: str = "INFO", *, component: str) -> None:
    """Route structlog and stdlib logging to JSON lines on stderr."""
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        redact,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(serializer=_dumps),
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    structlog.contextvars.bind_contextvars(component=component)


class Throttle:
    """At most one log line per key per interval, for what a client can trigger.

    A client that sends 5,000 malformed packets must not write 5,000 lines:
    the first of each kind is logged, then one line per ``interval_s`` saying
    how many were left out.
    """

    def __init__(
        self, interval_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._interval = interval_s
        self._clock = clock
        self._next: dict[str, float] = {}
        self._quiet: dict[str, int] = {}

    def allow(self, key: str) -> int | None:
        """None: stay quiet; else how many of this key were left out since the last line."""
        now = self._clock()
        if now < self._next.get(key, 0.0):
            self._quiet[key] = self._quiet.get(key, 0) + 1
            return None
        self._next[key] = now + self._interval
        return self._quiet.pop(key, 0)
