"""The import graph, drawn from the code: no circle, and no import from a lower layer to a higher one.

Every import counts, the lazy ones inside functions included (they still tie
two modules together), except the re-exports inside a package's module-level
``__getattr__`` (``from edge import FaceAnalyzer`` loading :mod:`edge.api`
on first use): that facade is a door into the package, not a dependency of it.

``LAYERS`` places every module of ``edge/``; a module may import its own
layer and the ones below. A new module fails :func:`test_every_edge_module_has_a_layer`
until it is placed, which is the moment to decide where it belongs.
``python tests/test_architecture.py`` prints the table and the graph
(docs/architecture.md quotes it).
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("edge", "train_host", "quantize", "deploy")
# The projects' packages, lowest first: edge (the device) never imports the host's training or quantization;
# train_host never imports quantize; deploy stands apart (it imports none of the others, none imports it).
PACKAGE_ORDER = {"edge": 0, "train_host": 1, "quantize": 2}

LAYERS: dict[int, tuple[str, tuple[str, ...]]] = {
    0: ("foundations: types, settings parsing, small helpers (import nothing of edge)", (
        "edge", "edge.frame", "edge.inputs", "edge.service", "edge.commands", "edge.settings",
        "edge.frame.labels", "edge.frame.results", "edge.frame.stats", "edge.frame.runtime", "edge.frame.preprocess",
        "edge.frame.calibration", "edge.service.logthrottle", "edge.service.stoppable", "edge.service.notify",
        "edge.inputs.picamera2_version", "edge.inputs.imagefile",
        "edge.outputs.appendlog", "edge.bench.loop", "edge.bench.workers", "edge.bench.report")),
    1: ("contracts and the frame's way in and out", (
        "edge.frame.manifest", "edge.frame.tracking", "edge.frame.annotate", "edge.inputs.sources", "edge.videowriter",
        "edge.outputs.base", "edge.outputs.group", "edge.outputs", "edge.detectors.settings", "edge.detectors.base",
        "edge.bench.floor", "edge.bench.frames")),
    2: ("the parts of a frame's analysis and the outputs", (
        "edge.frame.classifier", "edge.detectors.schedule", "edge.detectors.haar", "edge.detectors.blazeface",
        "edge.detectors", "edge.outputs.leds", "edge.outputs.display", "edge.outputs.liveview",
        "edge.outputs.liveview.settings", "edge.outputs.liveview.auth", "edge.outputs.liveview.page",
        "edge.outputs.liveview.hub", "edge.outputs.liveview.server", "edge.outputs.liveview.handler",
        "edge.outputs.liveview.output",
        "edge.outputs.eventlog", "edge.outputs.mqtt", "edge.outputs.mqtt.settings", "edge.outputs.mqtt.discovery",
        "edge.outputs.mqtt.connection", "edge.outputs.mqtt.output")),
    3: ("assembly: the pipeline, the outputs registry and its pre-flight checks", (
        "edge.frame.pipeline", "edge.outputs.registry", "edge.outputs.preflight")),
    4: ("settings from the TOML and from the command line", (
        "edge.service.config", "edge.cli", "edge.service.quickstart")),
    5: ("applications", (
        "edge.analyze", "edge.api", "edge.service.check", "edge.service.daemon", "edge.service.config_command",
        "edge.bench.row", "edge.bench.__main__", "edge.bench", "edge.bench.profile")),
    6: ("the entry point", ("edge.__main__",)),
}
LAYER_OF = {module: level for level, (_, modules) in LAYERS.items() for module in modules}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _facade_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes inside a module-level ``def __getattr__`` (lazy re-exports of a package)."""
    return {id(n) for top in tree.body if isinstance(top, ast.FunctionDef) and top.name == "__getattr__"
            for n in ast.walk(top)}


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The project modules ``path`` imports (``from edge.x import y`` counts ``edge.x.y`` when that is a module)."""
    tree = ast.parse(path.read_text())
    skip = _facade_nodes(tree) if path.name == "__init__.py" else set()
    me = module_name(path)
    package = me if path.name == "__init__.py" else me.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from . import x, from ..base import y
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in modules}
    return {m for m in found if m in modules and m != me}


def graph() -> dict[str, set[str]]:
    paths = [p for package in PACKAGES for p in sorted((ROOT / package).rglob("*.py"))]
    modules = {module_name(p) for p in paths}
    return {module_name(p): imports_of(p, modules) for p in paths}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each a circle of imports."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    sys.setrecursionlimit(max(sys.getrecursionlimit(), 10000))

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in edges.get(node, ()):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                item = stack.pop()
                on_stack.discard(item)
                group.append(item)
                if item == node:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def upward(edges: dict[str, set[str]]) -> list[str]:
    """Imports from a lower layer (or package) to a higher one, as ``a -> b (layer x -> y)``."""
    bad = []
    for module, targets in sorted(edges.items()):
        top = module.split(".")[0]
        for target in sorted(targets):
            other = target.split(".")[0]
            if (top == "deploy") != (other == "deploy"):
                bad.append(f"{module} -> {target} (deploy stands apart)")
            elif top != other and PACKAGE_ORDER[other] > PACKAGE_ORDER[top]:
                bad.append(f"{module} -> {target} (package {top} is below {other})")
            elif top == other == "edge" and LAYER_OF.get(target, -1) > LAYER_OF.get(module, 99):
                bad.append(f"{module} -> {target} (layer {LAYER_OF[module]} -> {LAYER_OF[target]})")
    return bad


def test_no_import_circle():
    assert cycles(graph()) == []


def test_no_import_from_a_lower_layer_to_a_higher_one():
    assert upward(graph()) == []


def test_every_edge_module_has_a_layer():
    edge = {m for m in graph() if m.split(".")[0] == "edge"}
    assert sorted(edge - set(LAYER_OF)) == [], "place the new module in LAYERS"
    assert sorted(set(LAYER_OF) - edge) == [], "a module in LAYERS that no longer exists"


def test_the_checks_catch_a_circle_and_an_upward_import():
    """The two checks on a graph that breaks both rules, so a passing test above means something."""
    edges = {"edge.settings": {"edge.frame.pipeline"}, "edge.frame.pipeline": {"edge.settings"}, "quantize.x": set(),
             "edge.service.config": {"quantize.x"}}
    assert cycles(edges) == [["edge.frame.pipeline", "edge.settings"]]
    assert upward(edges) == ["edge.service.config -> quantize.x (package edge is below quantize)",
                             "edge.settings -> edge.frame.pipeline (layer 0 -> 3)"]


if __name__ == "__main__":
    edges = graph()
    print("| layer | what | modules |\n|---|---|---|")
    for level, (what, modules) in sorted(LAYERS.items(), reverse=True):
        print(f"| {level} | {what} | {', '.join(m.removeprefix('edge.') for m in modules)} |")
    print()
    for module in sorted(m for m in edges if m.startswith("edge")):
        inside = sorted(t.removeprefix("edge.") for t in edges[module] if t.startswith("edge"))
        print(f"{module.removeprefix('edge.') or 'edge'} (layer {LAYER_OF.get(module)}) -> {', '.join(inside) or '-'}")
    print(f"\ncircles: {cycles(edges) or 'none'}; upward imports: {upward(edges) or 'none'}; "
          f"{len(edges)} modules, {sum(map(len, edges.values()))} imports")
