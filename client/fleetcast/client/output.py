"""How the CLI shows what it receives: pure formatting plus one small printer.

Events go to stdout, everything else (session, acks, connection state, the
summary) to stderr, so ``fleetcast-client --json | jq`` sees events only.
With ``--json`` stdout is one event payload per line, exactly as delivered,
and stderr lines are JSON objects too.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, TextIO

import orjson

from fleetcast.client import summary

Paint = Callable[[str, str], str]

RESET: Final = "\033[0m"
STYLES: Final = {
    "alert": "1;31",
    "incident": "33",
    "task": "36",
    "transmission": "34",
    "status": "35",
    "position": "2;32",
    "ok": "32",
    "warn": "33",
    "bad": "1;31",
    "dim": "2",
    "bold": "1",
}
ID_KEYS: Final = ("asset_id", "incident_id", "alert_id", "task_id", "channel_id", "user_id")
MAX_DETAIL: Final = 110


def painter(enabled: bool) -> Paint:
    """A function that wraps text in an ANSI style, or leaves it alone."""
    if not enabled:
        return lambda text, _style: text
    return lambda text, style: f"\033[{STYLES[style]}m{text}{RESET}"


def family(event_type: str) -> str:
    """The style of one event type: alerts stand out, positions recede."""
    if event_type.startswith("alert_"):
        return "alert"
    if event_type.startswith("incident_"):
        return "incident"
    if event_type.startswith("task_"):
        return "task"
    if event_type.startswith(("transmission_", "transcription_")):
        return "transmission"
    if event_type == "asset_status_changed":
        return "status"
    if event_type.startswith("asset_position"):
        return "position"
    return "bold"


def latency_style(value_ms: float) -> str:
    return "ok" if value_ms < 100 else "warn" if value_ms < 1000 else "bad"


def scalar(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.5f}".rstrip("0").rstrip(".")
    return str(value)


def detail(name: str, payload: Mapping[str, Any]) -> str:
    """One short phrase that says what the event is about."""
    if name == summary.BATCH_TYPE:
        return f"{len(summary.batch_positions(payload))} positions"
    if summary.is_snapshot(name):
        return f"snapshot of {len(summary.batch_positions(payload))} assets"
    data = payload.get("data")
    if not isinstance(data, Mapping):
        data = payload
    keys = [k for k in ID_KEYS if k in data]
    keys += [k for k in data if k not in ID_KEYS]
    parts = [
        f"{key}={scalar(data[key])}"
        for key in keys
        if isinstance(data[key], str | int | float | bool)
    ]
    text = " ".join(parts)
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def session_text(payload: object) -> str:
    """``disp-7 @ org-42 roles dispatcher rooms org, user:disp-7 (gateway gw-1)``."""
    if not isinstance(payload, Mapping):
        return str(payload)
    roles = ", ".join(str(r) for r in payload.get("roles") or ())
    rooms = ", ".join(str(r) for r in payload.get("rooms") or ())
    text = f"{payload.get('user', '?')} @ {payload.get('org', '?')}  roles {roles}  rooms {rooms}"
    gateway = payload.get("gateway")
    return f"{text}  (gateway {gateway})" if gateway else text


def clock(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%H:%M:%S.%f")[:-3]


def event_line(name: str, payload: object, received_at: float, paint: Paint) -> str:
    """``18:00:00.123    12ms  incident_created     incident:inc-9  incident_id=…``."""
    body: Mapping[str, Any] = payload if isinstance(payload, Mapping) else {"value": payload}
    event_type = str(body.get("event_type", name))
    lag = summary.latency_ms(body.get("occurred_at"), received_at)
    lag_text = paint(f"{lag:6.0f}ms", latency_style(lag)) if lag is not None else " " * 8
    return "  ".join(
        (
            paint(clock(received_at), "dim"),
            lag_text,
            paint(f"{event_type:<24}", family(event_type)),
            f"{body.get('room', '-')!s:<22}",
            detail(name, body),
        )
    )


def summary_lines(report: summary.Report, paint: Paint) -> list[str]:
    lines = [
        paint("summary", "bold")
        + f"  {report.total} events in {report.elapsed_s:.1f}s ({report.rate:.1f}/s)"
    ]
    for event_type, count in report.counts:
        lines.append(f"  {paint(f'{event_type:<26}', family(event_type))}{count:>8}")
    if report.positions_in_batches:
        lines.append(f"  {'positions in batches':<26}{report.positions_in_batches:>8}")
    if report.latency_samples:
        lines.append(
            f"  latency  p50 {report.p50_ms:.1f} ms  p99 {report.p99_ms:.1f} ms"
            f"  max {report.max_ms:.1f} ms  ({report.latency_samples} samples)"
        )
    return lines


class Printer:
    """Writes events to ``out`` and everything else to ``err``."""

    def __init__(
        self, out: TextIO, err: TextIO, *, json_mode: bool, color: bool, quiet: bool = False
    ) -> None:
        self._out = out
        self._err = err
        self._json = json_mode
        self._quiet = quiet
        self._paint = painter(color and not json_mode)

    def event(self, name: str, payload: object, received_at: float) -> None:
        if self._quiet:
            return
        if self._json:
            self._out.write(orjson.dumps(payload).decode() + "\n")
        else:
            self._out.write(event_line(name, payload, received_at, self._paint) + "\n")
        self._out.flush()

    def status(self, kind: str, text: str, **fields: object) -> None:
        """A line about the connection: ``kind`` is connected, refused, subscribed, …"""
        if self._json:
            line = orjson.dumps({"status": kind, "message": text, **fields}).decode()
        else:
            style = "bad" if kind in ("refused", "error") else "dim"
            line = f"{self._paint(f'[{kind}]', style)} {text}"
        self._err.write(line + "\n")
        self._err.flush()

    def summary(self, report: summary.Report) -> None:
        if self._json:
            self._err.write(orjson.dumps({"summary": report.as_dict()}).decode() + "\n")
        else:
            self._err.write("\n".join(summary_lines(report, self._paint)) + "\n")
        self._err.flush()
