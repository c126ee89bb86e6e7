"""The Django side talks to the engine only through engine.protocol, and its schema is fully migrated."""

from __future__ import annotations

import ast
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import call_command

ROOT = Path(__file__).resolve().parent.parent.parent
DJANGO_PACKAGES = ("console", "trading", "riskdesk", "compliance")


def engine_imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return [name for name in names if name == "engine" or name.startswith("engine.")]


def test_django_code_imports_nothing_from_the_engine_but_its_protocol():
    offenders = {
        str(path.relative_to(ROOT)): imports
        for package in DJANGO_PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if (imports := [name for name in engine_imports(path) if name != "engine.protocol"])
    }

    assert offenders == {}


@pytest.mark.django_db
def test_every_model_change_has_a_migration():
    output = StringIO()

    call_command("makemigrations", "--check", "--dry-run", stdout=output)

    assert "No changes detected" in output.getvalue()
