"""The layers of ARCHITECTURE.md: `make lint` checks the import graph between the project's
packages (import-linter contracts in pyproject.toml); this checks what it cannot, the Functions
framework (a subpackage of the external `azure` namespace) in the core and the embedded
backends."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.devhost_process import PROJECT_ROOT

pytestmark = pytest.mark.unit

FRAMEWORK = ("azure.functions", "azure.durable_functions")


def imported(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


@pytest.mark.parametrize("package", ["shared", "embedded"])
def test_the_core_and_the_embedded_backends_never_import_the_functions_framework(
    package: str,
) -> None:
    found = {
        str(path.relative_to(PROJECT_ROOT)): sorted(
            name for name in imported(path) if name.startswith(FRAMEWORK)
        )
        for path in (PROJECT_ROOT / package).rglob("*.py")
    }
    assert {path: names for path, names in found.items() if names} == {}
    assert len(found) > 5
