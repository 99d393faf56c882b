"""The floors hold (docs/architecture.md): the import contracts of pyproject.toml, modules of one
concept under 400 lines, no import circles between modules, no private names across modules.

Pure: reads the source tree only (no services), runs in a few seconds.
"""

from __future__ import annotations

import ast
import itertools
import logging
import sys
from collections.abc import Iterator
from pathlib import Path

import grimp
import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bridge", "crontab_import", "legacy_wrappers", "shadow")
MAX_LINES = 400

# Modules allowed over MAX_LINES, each with the reason it is still one concept. Keep it short.
LONG_MODULES: dict[str, str] = {}


def _modules() -> Iterator[tuple[str, Path]]:
    """``(dotted name, file)`` of every module of the four packages (migrations excluded: they
    are generated history, not code anyone navigates)."""
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            rel = path.relative_to(ROOT).with_suffix("")
            if "migrations" in rel.parts:
                continue
            parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
            yield ".".join(parts), path


def test_import_contracts_of_pyproject_hold(capfd: pytest.CaptureFixture[str]) -> None:
    """import-linter (what ``lint-imports`` runs, in this process): the floors, the pure core,
    read-only sources, SQL in the store. Its report names each broken import with its line."""
    from importlinter.cli import lint_imports

    # lint_imports configures logging with dictConfig, which disables every logger that exists
    # in this process: the bridge's own loggers would stay silent for the tests that run after
    # this one in the same worker (a webhook failure test once captured nothing). Restore them.
    loggers = [lg for lg in logging.Logger.manager.loggerDict.values()
               if isinstance(lg, logging.Logger) and not lg.disabled]
    try:
        code = lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True,
                            no_logo=True)
    finally:
        for lg in loggers:
            lg.disabled = False
    printed = capfd.readouterr().out
    assert "Contracts:" in printed, printed  # it ran and read them
    if code != 0:
        pytest.fail(printed[printed.find("Contracts:"):], pytrace=False)


def test_every_module_is_under_the_size_limit() -> None:
    lengths = {name: len(path.read_text().splitlines()) for name, path in _modules()}
    assert len(lengths) > 100  # the walk found the packages
    too_long = {n: k for n, k in lengths.items() if k > MAX_LINES and n not in LONG_MODULES}
    assert not too_long, f"modules over {MAX_LINES} lines: {dict(sorted(too_long.items()))}"
    stale = {n for n in LONG_MODULES if lengths.get(n, 0) <= MAX_LINES}
    assert not stale, f"allowlisted but short (or gone): drop them from LONG_MODULES: {stale}"


def _import_graph() -> grimp.ImportGraph:
    # grimp reads every import statement, function-local and TYPE_CHECKING ones included
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def _circles(graph: grimp.ImportGraph) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    modules = sorted(graph.modules)
    edges = {m: sorted(graph.find_modules_directly_imported_by(m)) for m in modules}
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in modules:
        if start in index:
            continue
        work = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = counter
                counter += 1
                stack.append(node)
                on_stack.add(node)
            nexts = edges[node]
            if i < len(nexts):
                work.append((node, i + 1))
                nxt = nexts[i]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
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
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return found


def _chain(graph: grimp.ImportGraph, component: list[str]) -> str:
    """One circle of the component, with the line of each import, for the failure message."""
    first = component[0]
    back = [m for m in component[1:] if graph.direct_import_exists(importer=m, imported=first)]
    there = graph.find_shortest_chain(importer=first, imported=back[0]) if back else None
    hops = [*there, first] if there else component
    lines = []
    for a, b in itertools.pairwise(hops):
        details = graph.get_import_details(importer=a, imported=b)
        at = ",".join(str(d["line_number"]) for d in details) or "?"
        lines.append(f"{a}:{at} -> {b}")
    return "; ".join(lines)


def test_no_import_circles_between_modules() -> None:
    graph = _import_graph()
    assert "bridge.core.spec" in graph.modules
    circles = _circles(graph)
    assert not circles, "import circles:\n" + "\n".join(_chain(graph, c) for c in circles)


def test_circle_finder_sees_a_function_local_circle(tmp_path: Path) -> None:
    """The check itself: a circle closed by an import inside a function is found."""
    pkg = tmp_path / "circ_pkg_arch"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("from circ_pkg_arch import b\n")
    (pkg / "b.py").write_text("def f():\n    from circ_pkg_arch import a\n    return a\n")
    (pkg / "c.py").write_text("from circ_pkg_arch import a\n")
    sys.path.insert(0, str(tmp_path))
    try:
        graph = grimp.build_graph("circ_pkg_arch", cache_dir=None)
    finally:
        sys.path.remove(str(tmp_path))
    assert _circles(graph) == [["circ_pkg_arch.a", "circ_pkg_arch.b"]]


def _project_module(name: str) -> bool:
    return name.split(".", 1)[0] in PACKAGES


def _resolve(module: str, node: ast.ImportFrom, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join([*base, *([node.module] if node.module else [])])


def private_imports(module: str, source: str, *, is_package: bool = False) -> list[str]:
    """``from x import _y`` where ``x`` is another project module (a private submodule counts:
    ``from pkg import _mod``). Dunder names are public protocol, not private."""
    out = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom):
            continue
        target = _resolve(module, node, is_package)
        if not _project_module(target) or target == module:
            continue
        for alias in node.names:
            name = alias.name
            if name.startswith("_") and not (name.startswith("__") and name.endswith("__")):
                out.append(f"{module}:{node.lineno} imports {target}.{name}")
    return out


def test_no_private_names_imported_across_modules() -> None:
    found = []
    for name, path in _modules():
        found += private_imports(name, path.read_text(), is_package=path.name == "__init__.py")
    assert not found, "private imports across modules:\n" + "\n".join(found)


def test_private_import_finder_sees_relative_and_local_imports() -> None:
    source = ("from bridge.core.spec import JobSpec, _load\n"
              "def f():\n    from .authority import _write\n"
              "from bridge.cli.x import __all__\n")
    assert private_imports("bridge.cli.legacy_cmd", source) == [
        "bridge.cli.legacy_cmd:1 imports bridge.core.spec._load",
        "bridge.cli.legacy_cmd:3 imports bridge.cli.authority._write",
    ]
