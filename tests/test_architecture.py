"""The tier rule of docs/architecture.md, checked on the source: every import of the package,
lazy ones inside functions included, read with ``ast`` (nothing is imported). An edge the doc
forbids, or an import cycle between subpackages, fails; the known edges still to be removed are
listed below, each with where it is and why it is not allowed, so that a new one fails."""

import ast
from collections import defaultdict
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "napari_emseg"

# docs/architecture.md, "What each tier may import": a part may import its own tier and those
# below it, except where the rules after this say otherwise. A part is a subpackage or a
# top-level module of napari_emseg; "__init__" is the package root (its lazy __all__).
TIERS = {
    # data, classical image processing, and the helpers every tier shares
    "io": 0, "metrics": 0, "segmentation": 0, "datasets": 0,
    "_progress": 0, "_timing": 0, "voxel_size": 0,
    "models": 1,
    "inference": 2, "training": 2,
    "propagation": 3, "proofreading": 3, "blockwise": 3, "calibration": 3,
    "pipeline": 4, "__init__": 4,
    "cli": 5, "_widgets": 5, "_reader": 5, "_writer": 5, "_sample_data": 5, "__main__": 5,
    "evaluation": 5,
}  # fmt: skip
ENTRY_POINTS = {"cli", "_widgets", "_reader", "_writer", "_sample_data", "__main__"}
MEASUREMENTS = {"evaluation"}
# Entry points reach the engine through the facade; below it they may use the data tier (files,
# progress), and beside it only these parts:
ENTRY_POINT_EXTRAS = {
    ("__main__", "cli"),  # python -m napari_emseg runs the CLI
    ("cli", "evaluation"),  # simulate-proofreading runs the oracle, benchmark the speed study
    ("_widgets", "proofreading"),  # the widgets drive the proofreading session and its edits
}
# Known edges the doc forbids, to be removed (each: where, and the issue that removes it).
KNOWN = {
    # operations importing the facade upward (issue 24.2: method_options and segment move below)
    ("blockwise", "pipeline"): "blockwise/run.py, blockwise/tasks.py",
    # the CLI past the facade: train and adapt build networks and read cards, segment runs
    # blockwise (issue 24.4)
    ("cli", "models"): "cli/adapt.py, cli/segment.py, cli/train.py",
    ("cli", "training"): "cli/adapt.py, cli/train.py",
    ("cli", "blockwise"): "cli/program.py, cli/segment.py",
    # the proofread widget reads a model card itself
    ("_widgets", "models"): "_widgets/proofread_widget.py",
    # entry points importing each other rather than a shared lower module
    ("_widgets", "_reader"): "_widgets/autosave.py",
    ("_sample_data", "_reader"): "_sample_data.py",
}
# Module cycles inside a part (lazy imports too), to be removed: none left.
KNOWN_MODULE_CYCLES: list[list[str]] = []
# Third-party packages only some parts may import (lazily or not).
GUI = {"napari", "qtpy", "magicgui", "superqt", "vispy", "PyQt5", "PyQt6", "PySide2", "PySide6"}
TORCH_FREE = {part for part, tier in TIERS.items() if tier == 0} | {
    "proofreading",
    "blockwise",
    "calibration",
}


def part_of(module: str) -> str:
    """``napari_emseg.io.read`` -> ``io``; the package itself -> ``__init__``."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def module_of(path: Path) -> tuple[str, str]:
    """The module's dotted name and the package its relative imports start from."""
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        return ".".join(parts[:-1]), ".".join(parts[:-1])
    return ".".join(parts), ".".join(parts[:-1])


def imported(path: Path) -> list[tuple[str, int]]:
    """Every module ``path`` imports (absolute names, relative imports resolved), with the line;
    ``from napari_emseg import x`` names the submodule ``x`` when there is one."""
    _, package = module_of(path)
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                is_module = base == "napari_emseg" and (
                    (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").is_file()
                )
                found.append((sub if is_module else base, node.lineno))
    return found


def walk() -> tuple[dict, dict]:
    """Edges between parts (``{(from, to): ["file:line", ...]}``) and third-party imports
    (``{(part, top-level package): ["file:line", ...]}``)."""
    edges, outside = defaultdict(list), defaultdict(list)
    for path in sorted(PACKAGE.rglob("*.py")):
        source = part_of(module_of(path)[0])
        where = str(path.relative_to(PACKAGE))
        for name, line in imported(path):
            if name == "napari_emseg" or name.startswith("napari_emseg."):
                target = part_of(name)
                if target != source:
                    edges[(source, target)].append(f"{where}:{line}")
            elif name:
                outside[(source, name.split(".")[0])].append(f"{where}:{line}")
    return edges, outside


def allowed(source: str, target: str) -> bool:
    if source in ENTRY_POINTS:
        return TIERS[target] in (0, 4) or (source, target) in ENTRY_POINT_EXTRAS
    if source in MEASUREMENTS:  # beside the entry points: every tier below them
        return TIERS[target] < TIERS[source]
    return TIERS[target] <= TIERS[source]


def cycles(edges) -> list[list[str]]:
    """Strongly connected parts (Tarjan): each list of two or more is a cycle."""
    graph = defaultdict(set)
    for source, target in edges:
        graph[source].add(target)
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


EDGES, OUTSIDE = walk()


def test_every_part_has_a_tier():
    parts = {d.name for d in PACKAGE.iterdir() if (d / "__init__.py").is_file()}
    parts |= {p.stem for p in PACKAGE.glob("*.py")}
    assert parts - set(TIERS) == set(), "give each new part its tier in docs/architecture.md"


def test_imports_point_down_the_tiers():
    bad = {edge: where for edge, where in EDGES.items() if not allowed(*edge) and edge not in KNOWN}
    assert bad == {}, "imports that docs/architecture.md forbids"


def test_the_known_edges_still_exist():
    """A known edge that is gone comes off the list (so it cannot come back unnoticed)."""
    assert [edge for edge in KNOWN if edge not in EDGES] == []
    # only forbidden edges are listed: against the tiers, or one half of a cycle
    assert [(a, b) for a, b in KNOWN if allowed(a, b) and (b, a) not in EDGES] == []


def test_no_import_cycles_between_parts():
    assert cycles(edge for edge in EDGES if edge not in KNOWN) == []


def module_edges() -> set[tuple[str, str]]:
    """Edges between modules; an import of a package's name is an edge to its ``__init__``."""
    modules = {module_of(path)[0]: path for path in PACKAGE.rglob("*.py")}
    edges = set()
    for name, path in modules.items():
        for target, _ in imported(path):
            parts = target.split(".")
            while parts and ".".join(parts) not in modules:
                parts.pop()  # ``napari_emseg.io.read_volume`` is the module napari_emseg.io
            if parts and ".".join(parts) != name:
                edges.add((name, ".".join(parts)))
    return edges


def test_no_import_cycles_between_modules():
    assert cycles(module_edges()) == KNOWN_MODULE_CYCLES


def test_only_the_widgets_import_napari_and_qt():
    found = {key: where for key, where in OUTSIDE.items() if key[1] in GUI}
    assert {part for part, _ in found} <= {"_widgets"}, found


def test_torch_stays_out_of_the_data_tier_and_the_operations():
    torch = {key: where for key, where in OUTSIDE.items() if key[1] == "torch"}
    assert {part for part, _ in torch} & TORCH_FREE == set(), torch
    learned = [w for w in torch.get(("propagation", "torch"), []) if "cconvlstm" not in w]
    assert learned == [], "in propagation/, only the learned propagator imports torch"


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from napari_emseg import pipeline\n", [("napari_emseg.pipeline", 1)]),
        ("def f():\n    from ..io import read\n", [("napari_emseg.io", 2)]),
        ("from . import cards\n", [("napari_emseg.models", 1)]),
        ("import napari_emseg.io.read as r\n", [("napari_emseg.io.read", 1)]),
    ],
)
def test_the_walk_resolves_lazy_and_relative_imports(tmp_path, monkeypatch, source, expected):
    fake = PACKAGE / "models" / "_walk_probe.py"
    monkeypatch.setattr(Path, "read_text", lambda self, *a, **k: source)
    assert imported(fake) == expected


def test_a_cycle_is_found_and_a_chain_is_not():
    assert cycles([("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")]) == [["a", "b", "c"]]
    assert cycles([("a", "b"), ("b", "c")]) == []
