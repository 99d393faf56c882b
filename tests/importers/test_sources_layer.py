"""The importers sit on the sources floor: they import the pure core and nothing above it.

crontab_import may use the standard library, bridge.core, defusedxml and the Java-data readers;
only crontab_import/quartz/jdbc.py talks to a database (the foreign Quartz one, SQLAlchemy).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "crontab_import"
MODULES = sorted(PACKAGE.rglob("*.py"))
FORBIDDEN = ("sqlalchemy", "redis", "redbeat", "celery", "kombu", "typer", "rich", "shadow",
             "legacy_wrappers")  # fmt: skip
DATABASE_READER = PACKAGE / "quartz" / "jdbc.py"


def _imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.append((node.lineno, node.module))
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_an_importer_module_imports_only_the_core_below_it(path: Path) -> None:
    bad = []
    for line, name in _imports(path):
        top = name.split(".")[0]
        if top == "bridge" and not (name == "bridge.core" or name.startswith("bridge.core.")):
            bad.append(f"{path.relative_to(ROOT)}:{line}: {name}")
        if top in FORBIDDEN and not (top == "sqlalchemy" and path == DATABASE_READER):
            bad.append(f"{path.relative_to(ROOT)}:{line}: {name}")
    assert bad == []


def test_every_importer_module_stays_one_concept_sized() -> None:
    long = [f"{p.relative_to(ROOT)}: {n}" for p in MODULES
            if (n := len(p.read_text().splitlines())) > 420]  # fmt: skip
    assert long == []
