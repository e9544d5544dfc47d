"""The rooms of ARCHITECTURE.md and their layers, checked from the source with Python's ast.

Every ``import`` and ``from ... import`` of the product packages counts, at any depth (inside
functions and ``TYPE_CHECKING`` blocks too): an import is an arrow whether it runs at start or
later. A room may import the rooms of lower layers only; rooms of one layer never import each
other; no two modules import each other, directly or round a loop.

``python tests/test_architecture.py`` prints each room's share of the code, the arrows between
rooms and the layers, measured now.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("inspection", "camera", "sync", "floor", "api")

# Lowest layer first. A room is a package prefix; a module belongs to the longest room naming it.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("camera",),  # stands alone: imports nothing of twinspect
    ("inspection.core",),  # the vocabulary: errors, class names, detections, outcomes
    ("inspection.store",),  # storage: database, migrations, evidence files (knows no verdict, no pipeline)
    ("inspection.reference",),  # golden reference: recipes, goldens, alignment, differences, the 3-plane input
    ("inspection.inference",),  # running a model: detectors, model cards (read side), the inference worker
    ("inspection.pipeline", "inspection.ml", "inspection.qa"),  # serving path | ML toolchain | QA review
    ("sync",),  # event log, twin, brokers, hub
    ("floor",),  # talking to the line: OPC UA, reject gate (Modbus, webhook), Sparkplug B, SPC, belt model
    ("api",),  # settings, CLI, FastAPI app, web UI: wires the rest
)
ROOMS = tuple(room for layer in LAYERS for room in layer)
LAYER_OF = {room: i for i, layer in enumerate(LAYERS) for room in layer}


def modules() -> dict[str, Path]:
    """Every product module by dotted name (a package by its own name)."""
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def room_of(module: str) -> str | None:
    return max((r for r in ROOMS if module == r or module.startswith(r + ".")), key=len, default=None)


def _targets(node: ast.Import | ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:  # relative import
        parts = module.split(".") if is_package else module.split(".")[:-1]
        parts = parts[: len(parts) - node.level + 1]
        base = ".".join([*parts, *([node.module] if node.module else [])])
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def imports() -> dict[str, set[str]]:
    """module -> the product modules it imports (the longest known prefix of each name imported)."""
    known = modules()
    graph: dict[str, set[str]] = defaultdict(set)
    for module, path in known.items():
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            for name in _targets(node, module, path.name == "__init__.py"):
                while name and name not in known:
                    name = name.rpartition(".")[0]
                if name and name != module:
                    graph[module].add(name)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph.get(root, ()))))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    top = stack.pop()
                    on_stack.discard(top)
                    component.append(top)
                    if top == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def layer_breaks(graph: dict[str, set[str]]) -> list[str]:
    """Every import from a room to one that is not in a lower layer."""
    out = []
    for module, targets in sorted(graph.items()):
        source = room_of(module)
        for target in sorted(targets):
            dest = room_of(target)
            if source is None or dest is None or source == dest:
                continue
            if LAYER_OF[dest] >= LAYER_OF[source]:
                out.append(f"{module} ({source}) imports {target} ({dest})")
    return out


def test_every_module_lives_in_a_room():
    homeless = [m for m in modules() if room_of(m) is None and m not in ("inspection",)]
    assert not homeless, f"modules outside every room of ARCHITECTURE.md: {homeless}"


def test_no_import_breaks_a_layer():
    breaks = layer_breaks(imports())
    assert not breaks, "imports against the layers of ARCHITECTURE.md:\n" + "\n".join(breaks)


def test_no_import_cycle():
    found = cycles(imports())
    assert not found, f"modules that import each other round a loop: {found}"


def test_the_checks_catch_a_break_and_a_cycle():
    graph = {
        "camera.frame": {"inspection.core.errors"},
        "inspection.pipeline.engine": {"inspection.ml.registry", "camera.frame"},
        "inspection.ml.registry": {"inspection.ml.evaluate"},
        "inspection.ml.evaluate": {"inspection.ml.registry"},
    }
    assert layer_breaks(graph) == [
        "camera.frame (camera) imports inspection.core.errors (inspection.core)",
        "inspection.pipeline.engine (inspection.pipeline) imports inspection.ml.registry (inspection.ml)",
    ]
    assert cycles(graph) == [["inspection.ml.evaluate", "inspection.ml.registry"]]


def test_the_gpu_training_path_stays_out_of_the_service():
    """bench/gpu_train.py runs the DeepPCB importer and training where api/ and pydantic-settings are missing."""
    graph = imports()
    seen, todo = set(), ["inspection.ml.datasets.deeppcb", "inspection.ml.training"]
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += graph.get(module, ())
            todo += [p for p in (module.rpartition(".")[0],) if p]  # a package's __init__ runs first
    assert not {m for m in seen if m.startswith(("api", "sync", "inspection.store", "inspection.pipeline"))}, seen


def report() -> str:
    """Each room's share of the lines, the arrows between rooms, the layers."""
    known = modules()
    lines = Counter({room_of(m) or m: 0 for m in known})
    for module, path in known.items():
        lines[room_of(module) or module] += len(path.read_text().splitlines())
    total = sum(lines.values())
    arrows: Counter[tuple[str, str]] = Counter()
    graph = imports()
    for module, targets in graph.items():
        for target in targets:
            a, b = room_of(module), room_of(target)
            if a and b and a != b:
                arrows[(a, b)] += 1
    out = [f"{total} lines of Python in {', '.join(PACKAGES)}"]
    out += [f"  {room:24s} {n:6d} {100 * n / total:5.1f}%" for room, n in lines.most_common()]
    out.append("arrows between rooms (imports):")
    out += [f"  {a} -> {b}: {n}" for (a, b), n in sorted(arrows.items())]
    out.append(f"layer breaks: {len(layer_breaks(graph))}, cycles: {len(cycles(graph))}")
    return "\n".join(out)


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    print(report())
