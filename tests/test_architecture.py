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


def test_no_state_in_nicegui_server_side_storage():
    # Instances share the database and Redis, not NiceGUI's storage files: only the browser's signed cookie
    # (app.storage.browser) may hold anything, so whichever instance serves a request reads the same state.
    offenders = [
        f"{path.relative_to(ROOT)}: storage.{node.attr}"
        for folder in ("rupali", "pages", "components") for path in (ROOT / folder).rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path)))
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and node.value.attr == "storage"
        and node.attr in {"user", "general", "tab", "client"}
    ]
    assert offenders == []


def test_pages_and_components_hold_no_sql():
    forbidden = {"sqlmodel", "sqlalchemy"}
    offenders = [
        str(path.relative_to(ROOT)) for folder in ("pages", "components") for path in (ROOT / folder).rglob("*.py")
        if any(name.split(".")[0] in forbidden for name in _imports(path)) or "session.exec" in path.read_text()
    ]
    assert offenders == []


# Values reach the page as properties and text (components/text.py), never as strings NiceGUI or the browser
# parses. These are the only places that build markup from configuration, each with its reason.
_MARKUP_FROM_CONFIGURATION = {
    ("components/theme.py", "add_head_html"): "design tokens of our own, and fixed asset paths",
    ("components/frame.py", "add_head_html"): "the operator's Umami settings, escaped for an attribute",
}
_PARSED = {"props", "classes", "style", "tooltip", "html", "add_head_html", "add_body_html", "run_javascript"}


def _is_literal(node: ast.expr) -> bool:
    """A string of ours: a constant, a choice between constants, or an UPPER_CASE table of them."""
    if isinstance(node, ast.Constant):
        return True
    if isinstance(node, ast.IfExp):
        return _is_literal(node.body) and _is_literal(node.orelse)
    if isinstance(node, ast.Subscript):
        return isinstance(node.value, ast.Name) and node.value.id.isupper()
    return False


def _only_element_ids(node: ast.expr) -> bool:
    """An f-string of ours whose only holes are element ids (numbers NiceGUI assigns)."""
    def hole_is_an_id(part: ast.expr) -> bool:
        return isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Attribute) \
            and part.value.attr == "id"

    return isinstance(node, ast.JoinedStr) and all(
        isinstance(part, ast.Constant) or hole_is_an_id(part) for part in node.values)


def test_no_string_built_props_classes_styles_or_markup_in_pages():
    offenders = []
    for folder in ("pages", "components"):
        for path in (ROOT / folder).rglob("*.py"):
            relative = str(path.relative_to(ROOT))
            for node in ast.walk(ast.parse(path.read_text(), filename=relative)):
                if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                        and node.func.attr in _PARSED and node.args):
                    continue
                if (relative, node.func.attr) in _MARKUP_FROM_CONFIGURATION:
                    continue
                argument = node.args[0]
                allowed = _is_literal(argument) or (node.func.attr == "run_javascript" and _only_element_ids(argument))
                if not allowed:
                    offenders.append(f"{relative}:{node.lineno} .{node.func.attr}({ast.unparse(argument)[:60]})")
    assert offenders == [], "use components.text (set_attributes, set_style, Text) instead:\n" + "\n".join(offenders)
