"""Entry point of ``python -m bench`` (see :mod:`bench.cli`)."""

from __future__ import annotations

import sys

from bench import cli

if __name__ == "__main__":
    sys.exit(cli.main())
