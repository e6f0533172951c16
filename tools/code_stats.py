"""The import graph's figures, for an issue's closing note: modules, circles, upward imports, the largest files
and the longest functions.

    python -m tools.code_stats            # from the repository root
    python -m tools.code_stats --top 5    # five of each list

The graph and the layer map are the ones ``tests/test_architecture.py`` enforces (imported, not copied), so
the figures printed here and the test cannot disagree. A function's length is its lines from ``def`` to its
last statement, decorators and docstring included; nested functions count inside their parent and again on
their own.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.test_architecture import PACKAGES, cycles, graph, module_name, upward  # noqa: E402


def functions(path: Path) -> list[tuple[int, str]]:
    """(lines, ``module:qualified.name``) of every function and method in ``path``."""
    path = path.resolve()
    tree = ast.parse(path.read_text())
    found: list[tuple[int, str]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([child.lineno] + [d.lineno for d in child.decorator_list])
                found.append(((child.end_lineno or child.lineno) - start + 1,
                              f"{module_name(path)}:{prefix}{child.name}"))
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top", type=int, default=3, help="how many of the largest files and longest functions")
    args = parser.parse_args(argv)
    edges = graph()
    counts = ", ".join(f"{p} {sum(m.split('.')[0] == p for m in edges)}" for p in PACKAGES)
    print(f"modules: {len(edges)} ({counts}); imports: {sum(map(len, edges.values()))}")
    print(f"import circles: {len(cycles(edges))} {cycles(edges) or ''}".rstrip())
    bad = upward(edges)
    print(f"upward imports: {len(bad)}" + "".join(f"\n  {line}" for line in bad))
    for package in ("edge", "train_host"):
        paths = sorted((ROOT / package).rglob("*.py"))
        sizes = sorted(((len(p.read_text().splitlines()), str(p.relative_to(ROOT))) for p in paths), reverse=True)
        longest = sorted((f for p in paths for f in functions(p)), reverse=True)
        print(f"{package}/: {len(paths)} modules; largest files: "
              + ", ".join(f"{name} {lines}" for lines, name in sizes[:args.top]))
        print(f"{package}/: longest functions: " + ", ".join(f"{name} {lines}" for lines, name in longest[:args.top]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
