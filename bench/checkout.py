"""Which code the figures measure: the commit, and the uncommitted changes on top.

The benchmark runs the shipped code from the work tree, which may hold
uncommitted edits (or change while a run goes on). A fingerprint of HEAD plus
those edits is taken at the start of the run and of every scenario, so a
report never silently mixes two versions.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Final

#: Folders whose code the figures measure.
SHIPPED: Final = ("gateway", "consumer", "protocol", "common")


def _git(*args: str) -> bytes:
    return subprocess.run(["git", *args], capture_output=True, check=False).stdout


def describe() -> str:
    """``<commit>`` or ``<commit> + N uncommitted files in ...``."""
    commit = _git("rev-parse", "--short", "HEAD").decode().strip() or "?"
    changed = _git("status", "--porcelain", "--", *SHIPPED).decode().splitlines()
    if not changed:
        return commit
    return f"{commit} + {len(changed)} uncommitted files in {', '.join(SHIPPED)}"


def fingerprint() -> str:
    """Short hash of HEAD, the diff of the shipped folders and their untracked files."""
    digest = hashlib.sha1(usedforsecurity=False)
    digest.update(_git("rev-parse", "HEAD"))
    digest.update(_git("diff", "HEAD", "--", *SHIPPED))
    for name in sorted(_git("ls-files", "--others", "--exclude-standard", "--", *SHIPPED).split()):
        path = Path(name.decode())
        digest.update(name)
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()[:10]
