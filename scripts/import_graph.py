"""Print the import graph among the `sdaanet` modules (read with `ast`, nothing imported); exit 1
on a circle, on an entry point that imports another entry point, on an upward import (a library
module importing an entry point) or on a bottom floor (`data`, `models`) importing anything
above it or each other.

    python scripts/import_graph.py
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
ENTRY_POINTS = {
    "sdaanet.train",
    "sdaanet.eval",
    "sdaanet.table",
    "sdaanet.predict",
    "sdaanet.report",
    "sdaanet.complexity",
}
# `make demo` on top of the commands: it trains (train.fit) and predicts (predict's Python API)
ON_TOP = {"sdaanet.demo"}
FLOORS = ("sdaanet.data", "sdaanet.models")
# what the bottom floors may import besides their own floor (sdaanet-data's parser: cli)
BELOW = {"sdaanet.errors", "sdaanet.io", "sdaanet.imagenet", "sdaanet.cli"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, name: str, modules: set[str]) -> set[str]:
    """The `sdaanet` modules that `path` imports (deferred imports included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    files = {module_name(p): p for p in sorted((SRC / "sdaanet").rglob("*.py"))}
    return {name: imports(path, name, set(files)) for name, path in files.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """One circle per strongly connected part of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in sorted(edges[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while (w := stack.pop()) != v:
                part.append(w)
            if part:
                out.append(sorted([v, *part]))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def problems(edges: dict[str, set[str]]) -> list[str]:
    """What breaks the house's rules in `edges` (module -> the modules it imports)."""
    found = [f"circle: {' <-> '.join(c)}" for c in circles(edges)]
    found += [
        f"entry point {v} imports entry point {w}"
        for v in sorted(ENTRY_POINTS & set(edges))
        for w in sorted(edges[v] & ENTRY_POINTS)
    ]
    found += [
        f"upward import: {v} imports entry point {w}"
        for v in sorted(set(edges) - ENTRY_POINTS - ON_TOP)
        for w in sorted(edges[v] & ENTRY_POINTS)
    ]
    found += [
        f"floor {v} imports {w}"
        for v in sorted(edges)
        for floor in FLOORS
        if v.startswith(floor)
        for w in sorted(edges[v])
        if not (w.startswith(floor) or w in BELOW)
    ]
    return found


def main() -> int:
    edges = graph()
    # a package's __init__ re-exporting its modules is not a circle with them
    edges = {v: {w for w in ws if not v.startswith(f"{w}.")} for v, ws in edges.items()}
    for name in sorted(edges):
        print(f"{name} -> {', '.join(sorted(edges[name])) or '-'}")
    found = problems(edges)
    for problem in found:
        print(f"error: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
