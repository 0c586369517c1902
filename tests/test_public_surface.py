"""The lazy exports are visible to type checkers and IDEs (issue 22): every package's
``TYPE_CHECKING`` block imports exactly what its ``_EXPORTS`` lazily provides, the names
resolve to the objects the modules define, and the package ships ``py.typed``."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

import neuralcollapse

PACKAGE = Path(neuralcollapse.__file__).parent
LAZY = sorted(path for path in PACKAGE.rglob("__init__.py") if "lazy_exports(" in path.read_text())


def _package_name(path: Path) -> str:
    return ".".join(path.parent.relative_to(PACKAGE.parent).parts)


def _type_checking_imports(tree: ast.Module) -> dict[str, str]:
    found = {}
    for node in tree.body:
        if isinstance(node, ast.If) and getattr(node.test, "id", None) == "TYPE_CHECKING":
            for statement in node.body:
                assert isinstance(statement, ast.ImportFrom)
                found.update({alias.name: statement.module for alias in statement.names})
    return found


@pytest.mark.parametrize("path", LAZY, ids=lambda path: _package_name(path))
def test_type_checking_imports_mirror_the_lazy_exports(path):
    package = importlib.import_module(_package_name(path))
    exports = package._EXPORTS
    assert _type_checking_imports(ast.parse(path.read_text())) == exports
    assert set(package.__all__) >= set(exports)
    for name, module in exports.items():
        assert getattr(package, name) is getattr(importlib.import_module(module), name)


def test_the_package_is_marked_typed():
    assert (PACKAGE / "py.typed").is_file()
