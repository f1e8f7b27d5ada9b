"""Generate charts/fleetcast/files/crd-fleetbroadcasts.yaml from the operator's models.

The models (operator/fleetcast/operator/spec.py and statusmodel.py) are the one
source; fleetcast.operator.crdschema turns them into the CRD. `make manifests`
writes the file, `make lint` runs the check.

    python scripts/crd.py          write the CRD file
    python scripts/crd.py --check  exit 1 if the file is stale
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fleetcast.operator import crdschema

CRD_FILE = (
    Path(__file__).resolve().parent.parent / "charts/fleetcast/files/crd-fleetbroadcasts.yaml"
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the file is stale")
    args = parser.parse_args(argv)
    fresh = crdschema.render()
    if args.check:
        if not CRD_FILE.exists() or CRD_FILE.read_text() != fresh:
            print(f"{CRD_FILE} is stale: run `make manifests`", file=sys.stderr)
            return 1
        return 0
    CRD_FILE.write_text(fresh)
    print(f"crd: wrote {CRD_FILE}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
