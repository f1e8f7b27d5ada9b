"""Temp dirs that name who uses them, so the leftovers of a killed run can be swept safely.

A SIGKILLed `make run` cannot delete its Kafka and Redis data dirs. Each such
dir carries a marker naming the process that made it and every server started
in it (pid and start time, :class:`fleetcast.devtools.lifetime.Owner`); the
next run deletes a dir only when all of them are gone. A dir without a marker
(another tool's, or one older than markers) or of another user is never touched.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable
from dataclasses import asdict
from pathlib import Path
from typing import Any, Final

import orjson

from fleetcast.devtools.lifetime import Owner

__all__ = ["add_user", "make", "mark", "owned_by", "stale", "sweep"]

MARKER: Final = ".fleetcast-owner.json"


def make(prefix: str) -> Path:
    """A new temp dir under the system's temp folder, marked as this process's."""
    path = Path(tempfile.mkdtemp(prefix=prefix))
    mark(path)
    return path


def mark(path: Path) -> None:
    """Name this process as ``path``'s owner."""
    _write(path, {"owner": asdict(Owner.me()), "users": []})


def add_user(path: Path, pid: int) -> None:
    """Name process ``pid`` (a server working in ``path``) too; no-op on an unmarked dir."""
    data = _read(path)
    user = Owner.of(pid)
    if data is None or user is None:
        return
    data["users"] = [*data.get("users", []), asdict(user)]
    _write(path, data)


def stale(path: Path) -> bool:
    """True when ``path`` is ours, marked, and everyone it names has exited."""
    data = _read(path)
    if data is None or path.is_symlink() or path.stat().st_uid != os.getuid():
        return False
    try:
        named = [Owner(**data["owner"]), *(Owner(**user) for user in data.get("users", []))]
    except (KeyError, TypeError):
        return False
    return not any(process.alive() for process in named)


def sweep(prefixes: Iterable[str], root: Path | None = None) -> list[Path]:
    """Delete the stale dirs whose names start with one of ``prefixes``; returns them."""
    removed = []
    for path in _candidates(prefixes, root):
        if stale(path):
            shutil.rmtree(path, ignore_errors=True)
            removed.append(path)
    return removed


def owned_by(pid: int, prefixes: Iterable[str], root: Path | None = None) -> list[Path]:
    """The marked dirs that process ``pid`` made (what a run leaves behind if killed)."""
    found = []
    for path in _candidates(prefixes, root):
        data = _read(path)
        if data is not None and data.get("owner", {}).get("pid") == pid:
            found.append(path)
    return found


def _candidates(prefixes: Iterable[str], root: Path | None) -> list[Path]:
    base = root or Path(tempfile.gettempdir())
    return sorted(path for prefix in prefixes for path in base.glob(f"{prefix}*"))


def _read(path: Path) -> dict[str, Any] | None:
    try:
        data = orjson.loads((path / MARKER).read_bytes())
    except (OSError, orjson.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def _write(path: Path, data: dict[str, Any]) -> None:
    partial = path / f"{MARKER}.partial"
    partial.write_bytes(orjson.dumps(data))
    with contextlib.suppress(FileNotFoundError):  # the dir went away meanwhile
        os.replace(partial, path / MARKER)
