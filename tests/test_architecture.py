"""The shape of the package: imports go one way, and the docs teach the public API.

The import graph is read from the source with :mod:`ast` (nothing is imported): every
``import`` and ``from ... import`` of a ``skcorr`` module, at module level or inside a
function, except those under ``if TYPE_CHECKING:``, which never run. Importing
``skcorr.a.b`` also runs ``skcorr/a/__init__.py``, so a module depends on the packages
above what it imports too (not on its own packages, which Python has loaded before it).
"""

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "skcorr"

# The bottom floor: what every other module may use; it uses nothing above it.
BOTTOM_FLOOR = ("_image", "_array", "_io", "_validation", "_geometry")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _runtime_imports(tree: ast.AST):
    """Every Import/ImportFrom node outside ``if TYPE_CHECKING:`` blocks."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, ast.If) and _is_type_checking(node):
            stack.extend(node.orelse)
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        stack.extend(ast.iter_child_nodes(node))


def _with_parents(name: str) -> set[str]:
    parts = name.split(".")
    return {".".join(parts[:i]) for i in range(1, len(parts) + 1)}


def imports_of(name: str, source: str | None = None) -> dict[str, int]:
    """The skcorr modules ``name`` imports when it runs -> the first line importing each.

    ``source`` is the module's code (default: its file).
    """
    path = MODULES[name]
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: dict[str, int] = {}
    tree = ast.parse(path.read_text() if source is None else source, str(path))
    for node in _runtime_imports(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            # ``from pkg import mod`` imports the module pkg.mod; ``from mod import f`` mod.
            targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in MODULES else base
                       for alias in node.names]
        for target in targets:
            if target.split(".")[0] != "skcorr":
                continue
            for module in _with_parents(target) - _with_parents(name):
                if module in MODULES:
                    found.setdefault(module, node.lineno)
    return found


GRAPH = {name: imports_of(name) for name in MODULES}


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (as a path that returns to its start) per strongly connected component."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    components = []

    def visit(node):  # Tarjan's algorithm; the graph has a few dozen nodes
        index[node] = low[node] = len(index)
        stack.append(node)
        for child in graph[node]:
            if child not in index:
                visit(child)
                low[node] = min(low[node], low[child])
            elif child in stack:
                low[node] = min(low[node], index[child])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(set(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [_cycle_through(graph, sorted(component)[0], component)
            for component in components]


def _cycle_through(graph, start, component) -> list[str]:
    """The shortest path from ``start`` back to itself inside ``component``."""
    paths = {start: [start]}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for child in sorted(graph[node]):
                if child == start:
                    return paths[node] + [start]
                if child in component and child not in paths:
                    paths[child] = paths[node] + [child]
                    following.append(child)
        frontier = following
    raise AssertionError(f"{start} is in no cycle of {sorted(component)}")


def _describe(graph, cycle) -> str:
    steps = [f"{a} (line {graph[a][b]}) -> {b}" for a, b in zip(cycle, cycle[1:], strict=False)]
    return "\n  ".join(steps)


def test_the_graph_sees_every_kind_of_import():
    """The walker finds relative, absolute and function-level imports (else no test)."""
    source = """
from typing import TYPE_CHECKING
import numpy as np
from .._image import as_rgb
from ..features._cache import pass_memory
from .. import backbones
import skcorr.metrics
if TYPE_CHECKING:
    from ..flow import FlowAligner
def fit():
    from . import _crops
    from ..datasets import load_cub
"""
    assert imports_of("skcorr.keypoints._prior", source) == {
        "skcorr._image": 4, "skcorr.features._cache": 5, "skcorr.features": 5,
        "skcorr.backbones": 6, "skcorr.metrics": 7, "skcorr.keypoints._crops": 11,
        "skcorr.datasets": 12}
    assert "skcorr._image" in GRAPH["skcorr.features._base"]  # the real files are read
    assert find_cycles({"a": {"b": 1}, "b": {"c": 2}, "c": {"a": 3}, "d": {"a": 4}}) == [
        ["a", "b", "c", "a"]]


def test_no_import_cycle():
    cycles = find_cycles(GRAPH)
    assert not cycles, "Import cycles among the modules of skcorr/:\n  " + "\n  ".join(
        _describe(GRAPH, cycle) for cycle in cycles)


@pytest.mark.parametrize("floor", [m for m in BOTTOM_FLOOR if f"skcorr.{m}" in MODULES])
def test_the_bottom_floor_imports_nothing_above_it(floor):
    allowed = {f"skcorr.{m}" for m in BOTTOM_FLOOR} | {"skcorr"}
    above = {m: line for m, line in GRAPH[f"skcorr.{floor}"].items() if m not in allowed}
    assert not above, f"skcorr.{floor} imports modules above the bottom floor: {above}"


def test_no_package_reaches_into_another_packages_private_modules():
    """``skcorr.<pkg>._<module>`` is used inside ``<pkg>`` only; others import ``<pkg>``."""
    found = []
    for name, imports in GRAPH.items():
        for target, line in imports.items():
            parts = target.split(".")
            owner = ".".join(parts[:2])
            if (len(parts) == 3 and parts[2].startswith("_")
                    and name != owner and not name.startswith(owner + ".")):
                found.append(f"{name} (line {line}) imports {target}")
    assert not found, "Private modules used across packages:\n  " + "\n  ".join(found)


def _in(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def test_columns_sits_beside_flow_and_keypoints_and_visualize_draws_without_it():
    """skcorr.columns uses features and below; skcorr.visualize never imports it."""
    assert {"skcorr.columns._store", "skcorr.columns._database",
            "skcorr.visualize._plot"} <= set(MODULES)
    above = ("skcorr.flow", "skcorr.keypoints", "skcorr.evaluation", "skcorr.visualize",
             "skcorr._demo", "skcorr.cli")
    found = [f"{name} (line {line}) imports {target}"
             for name, imports in GRAPH.items() if _in(name, "skcorr.columns")
             for target, line in imports.items()
             if any(_in(target, package) for package in above)]
    found += [f"{name} (line {line}) imports {target}"
              for name, imports in GRAPH.items() if _in(name, "skcorr.visualize")
              for target, line in imports.items() if _in(target, "skcorr.columns")]
    assert not found, "Imports across the columns/visualize line:\n  " + "\n  ".join(found)


def test_the_bottom_floor_exists():
    assert {"skcorr._image", "skcorr._array", "skcorr._io"} <= set(MODULES)


# -- the docs teach the public API ------------------------------------------------------
PRIVATE_IMPORT = re.compile(
    r"\b(?:from\s+skcorr(?:\.\w+)*\._\w+\s+import|import\s+skcorr(?:\.\w+)*\._\w+)")

DOC_FILES = sorted([*ROOT.glob("*.md"), *(ROOT / "docs").rglob("*.rst"),
                    *(ROOT / "examples").rglob("*.py"), *(ROOT / "examples").rglob("*.txt")])


def _doctest_lines(path: Path):
    """(line number, text) of each ``>>>`` or ``...`` line of a source file."""
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if line.lstrip().startswith((">>>", "...")):
            yield number, line


def test_the_private_import_pattern():
    for private in ("from skcorr.features._sift import DenseSIFT", "import skcorr._io",
                    "from skcorr._image import as_rgb"):
        assert PRIVATE_IMPORT.search(private)
    for public in ("from skcorr import DenseSIFT", "from skcorr.features import FeatureMap",
                   "import skcorr.flow", "from skcorr.datasets import load_cub"):
        assert not PRIVATE_IMPORT.search(public)


def test_docs_examples_and_doctests_import_public_paths():
    found = [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
             for path in DOC_FILES
             for number, line in enumerate(path.read_text().splitlines(), start=1)
             if PRIVATE_IMPORT.search(line)]
    found += [f"{path.relative_to(ROOT)}:{number}: {line.strip()}"
              for path in MODULES.values() for number, line in _doctest_lines(path)
              if PRIVATE_IMPORT.search(line)]
    assert DOC_FILES and not found, "Imports of private modules:\n" + "\n".join(found)
