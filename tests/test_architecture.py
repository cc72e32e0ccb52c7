"""The layering rules of the guide, checked on the source."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.sqlite_only


def _imports(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_core_never_imports_nicegui_except_the_web_wiring():
    offenders = [
        str(path.relative_to(ROOT)) for path in (ROOT / "rupali").rglob("*.py")
        if path.name != "web.py" and any(name.split(".")[0] in {"nicegui", "pages", "components"}
                                         for name in _imports(path))
    ]
    assert offenders == []


def test_pages_and_components_hold_no_sql():
    forbidden = {"sqlmodel", "sqlalchemy"}
    offenders = [
        str(path.relative_to(ROOT)) for folder in ("pages", "components") for path in (ROOT / folder).rglob("*.py")
        if any(name.split(".")[0] in forbidden for name in _imports(path)) or "session.exec" in path.read_text()
    ]
    assert offenders == []
