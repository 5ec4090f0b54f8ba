"""Every library module holds code of its own: none only re-exports another (issue 25)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(
    p for pkg in ("stores", "stiscube", "cte") for p in (ROOT / pkg).rglob("*.py")
    if p.name != "__init__.py"
)


def _only_reexports(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            continue  # the docstring
        if isinstance(node, ast.Import | ast.ImportFrom):
            continue
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == [
            "__all__"
        ]:
            continue
        return False
    return True


def test_the_check_sees_a_reexport_shim():
    shim = '"""Public home."""\nfrom stores._x import a, b\n\n__all__ = ["a", "b"]\n'
    assert _only_reexports(ast.parse(shim))
    assert not _only_reexports(ast.parse(shim + "\ndef c():\n    return 1\n"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_only_reexports_another(path):
    assert not _only_reexports(ast.parse(path.read_text())), f"{path} only re-exports"
