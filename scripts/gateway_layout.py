"""Write (or check) the module map of docs/gateway.md from the gateway's own docstrings.

The map is the folders (one per layer) and, for each module, the first line
of its docstring: it cannot drift from the code because it is made from it.

    python scripts/gateway_layout.py          rewrite the section in docs/gateway.md
    python scripts/gateway_layout.py --check  exit 1 if the section is stale
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "gateway" / "fleetcast" / "gateway"
DOC = ROOT / "docs" / "gateway.md"
BEGIN, END = "<!-- layout:begin (scripts/gateway_layout.py) -->", "<!-- layout:end -->"
#: Layers from the top; modules outside them come first.
LAYERS = ("edge", "redis", "kafka", "rooms", "transport")


def summary(path: Path) -> str:
    """The first line of a module's docstring."""
    doc = ast.get_docstring(ast.parse(path.read_text())) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def modules(folder: Path) -> list[Path]:
    return sorted(p for p in folder.glob("*.py") if p.name != "__init__.py")


def table() -> str:
    lines = ["| module | what it is for |", "| --- | --- |"]
    for path in modules(PACKAGE):
        lines.append(f"| `{path.name}` | {summary(path)} |")
    for layer in LAYERS:
        folder = PACKAGE / layer
        lines.append(f"| **`{layer}/`** | **{summary(folder / '__init__.py')}** |")
        for path in modules(folder):
            lines.append(f"| `{layer}/{path.name}` | {summary(path)} |")
    return "\n".join(lines)


def render(text: str) -> str:
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    if not rest:
        raise SystemExit(f"{DOC} has no {BEGIN} marker")
    return f"{head}{BEGIN}\n{table()}\n{END}{tail}"


def main() -> None:
    current = DOC.read_text()
    fresh = render(current)
    if "--check" in sys.argv[1:]:
        if fresh != current:
            print("docs/gateway.md's module map is stale: run python scripts/gateway_layout.py")
            raise SystemExit(1)
        return
    DOC.write_text(fresh)


if __name__ == "__main__":
    main()
