"""The house's rules, read from the code's own imports (ast; nothing is imported or run).

`LAYERS` is the one layering table: folders from the ground floor up, in the order a run's
data flows. A module may import its own folder and the floors below it, never a folder on
its own floor or above, and no modules may import each other in a loop (imports inside
functions and under TYPE_CHECKING count: they are loops all the same).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: floors, ground first; folders on one floor may not import each other
LAYERS: tuple[tuple[str, ...], ...] = (
    ("harness/core",),                                    # errors, paths, files, formatting
    ("harness/codegen",),                                 # kernel builder -> WAT
    ("harness/plugins",),                                 # contracts: workload, strategy, plan
    ("harness/toolchain",),                               # clang, Binaryen, npm tools
    ("workloads", "strategies", "harness/runtimes"),      # the plugins themselves
    ("harness/worker", "harness/store"),                # process boundary; rows on disk
    ("harness/standalone",),                              # plans as programs (their worker)
    ("harness/analysis", "harness/probes"),               # verdicts from rows; machine facts
    ("harness/run",),                                     # the parent side of a run
    ("reports",),                                         # HTML, figures, compare pages
    ("harness/cli",),                                     # commands, console, export
    ("harness",),                                         # harness/__main__.py: `python -m harness`
)
PACKAGES = ("harness", "workloads", "strategies", "reports")


def floor_of(folder: str) -> int:
    return next(i for i, floor in enumerate(LAYERS) if folder in floor)


def folder_of(module: str) -> str:
    """The layering folder of a dotted module name: the longest listed folder holding it."""
    path = module.replace(".", "/")
    folders = [f for floor in LAYERS for f in floor if path == f or path.startswith(f + "/")]
    if not folders:
        raise AssertionError(f"{module} is in no folder of LAYERS: add its folder to the table")
    return max(folders, key=len)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_imports(path: Path) -> set[str]:
    """Project modules `path` imports, anywhere in the file (`from a import b` counts as
    a.b when a.b is a module of the project, else as a)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    package = module_name(path) if path.name == "__init__.py" else module_name(path).rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join([*up, base] if base else up)
            for a in node.names:
                sub = f"{base}.{a.name}"
                found.add(sub if _is_module(sub) else base)
    return {m for m in found if m.split(".")[0] in PACKAGES}


def _is_module(dotted: str) -> bool:
    p = ROOT / dotted.replace(".", "/")
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def import_graph() -> dict[str, set[str]]:
    files = [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]
    return {module_name(p): project_imports(p) - {module_name(p)} for p in files}


def upward_imports(graph: Mapping[str, Iterable[str]]) -> list[str]:
    """Every import from a folder into its own floor's other folders or a higher floor."""
    bad = []
    for mod, targets in graph.items():
        src = folder_of(mod)
        for t in targets:
            dst = folder_of(t)
            if dst != src and floor_of(dst) >= floor_of(src):
                bad.append(f"{mod} ({src}) imports {t} ({dst})")
    return sorted(bad)


def cycles(graph: Mapping[str, Iterable[str]]) -> list[list[str]]:
    """Strongly connected groups of two or more modules (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_every_module_has_a_floor() -> None:
    for mod in import_graph():
        folder_of(mod)  # raises for a module outside the table


def test_no_import_runs_upward_or_sideways() -> None:
    assert upward_imports(import_graph()) == []


def test_no_import_cycles() -> None:
    assert cycles(import_graph()) == []


def test_the_rules_catch_what_they_forbid() -> None:
    """The checks themselves: a planted upward import, sideways import and cycle are found."""
    graph = {"harness.core.errors": {"harness.run.pipeline"},
             "harness.run.pipeline": {"harness.core.errors"},
             "workloads.kernels.gemm": {"strategies.shared"},
             "strategies.shared": {"harness.plugins.plan"},
             "harness.plugins.plan": set()}
    assert upward_imports(graph) == [
        "harness.core.errors (harness/core) imports harness.run.pipeline (harness/run)",
        "workloads.kernels.gemm (workloads) imports strategies.shared (strategies)"]
    assert cycles(graph) == [["harness.core.errors", "harness.run.pipeline"]]
    with pytest.raises(AssertionError, match="no folder"):
        folder_of("elsewhere.module")


def test_imports_are_read_in_all_their_forms(tmp_path: Path) -> None:
    """Function-level, TYPE_CHECKING and `from package import module` imports all count."""
    graph = import_graph()
    # harness/worker/__main__.py: `from harness.worker.main import main`
    assert "harness.worker.main" in graph["harness.worker.__main__"]
    # `from harness.worker import inprocess` names the module, not the package
    assert _is_module("harness.worker.inprocess")
    assert "harness.run.pipeline" in graph and "harness.run.request" in graph["harness.run.pipeline"]
