"""The console's pure JavaScript readers, run by node's built-in test runner.

They decide what the map draws from positions, batches and snapshots, so
they are tested without a browser; the browser test covers the rest.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

TESTS = Path(__file__).parent / "console"


def test_console_event_readers() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.fail("node not found: install nodejs (scripts/web-deps.sh needs npm as well)")
    files = sorted(str(path) for path in TESTS.glob("*.test.mjs"))
    assert files
    run = subprocess.run(
        [node, "--test", *files], capture_output=True, text=True, timeout=120, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
