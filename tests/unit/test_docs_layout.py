"""docs/gateway.md's module map is what scripts/gateway_layout.py makes from the code today."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.drift
def test_the_gateway_module_map_matches_the_code() -> None:
    done = subprocess.run(
        [sys.executable, ROOT / "scripts/gateway_layout.py", "--check"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
