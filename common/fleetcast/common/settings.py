"""Loading a component's settings: one clear message and exit code 2 when they are invalid.

A misconfigured pod then fails fast in CrashLoopBackOff with the reason in
its log, one line per bad variable, and no traceback.
"""

from __future__ import annotations

import sys
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

S = TypeVar("S", bound=BaseSettings)


def describe(program: str, error: ValidationError) -> str:
    """One line per bad field, named as the environment variable that set it."""
    lines = []
    for item in error.errors():
        where = "_".join(str(part) for part in item["loc"]).upper()
        # OTEL_* variables are the OpenTelemetry specification's, unprefixed.
        name = where if where.startswith("OTEL_") else f"FLEETCAST_{where}"
        name = name if where else "configuration"
        lines.append(f"  {name}: {item['msg'].removeprefix('Value error, ')}")
    return f"{program}: invalid configuration\n" + "\n".join(lines)


def load(settings_class: type[S], program: str) -> S:
    """The settings from the environment, or exit 2 saying what is wrong."""
    try:
        return settings_class()
    except ValidationError as exc:
        print(describe(program, exc), file=sys.stderr)
        raise SystemExit(2) from None
