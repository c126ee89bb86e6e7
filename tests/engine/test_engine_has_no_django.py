"""The engine stays plain Python: no module under engine/ reaches Django, its helpers, or the console apps."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
ENGINE_DIR = REPO_ROOT / "engine"
FORBIDDEN = ("django", "channels", "celery", "console", "trading", "riskdesk", "compliance")


def _engine_files() -> list[Path]:
    return sorted(path for path in ENGINE_DIR.rglob("*.py") if "__pycache__" not in path.parts)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO_ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_forbidden(module: str) -> bool:
    return module.split(".", maxsplit=1)[0] in FORBIDDEN


def _forbidden_imports(source: str, filename: str) -> list[str]:
    """Modules named by `import x`, `from x import y`, and `importlib.import_module("x")` / `__import__("x")`."""
    found = []
    for node in ast.walk(ast.parse(source, filename)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif (
            isinstance(node, ast.Call)
            and (getattr(node.func, "attr", None) == "import_module" or getattr(node.func, "id", None) == "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            names = [node.args[0].value]
        else:
            continue
        found += [f"{filename}:{node.lineno} imports {name}" for name in names if _is_forbidden(name)]
    return found


def test_the_scan_recognises_every_way_of_naming_a_forbidden_module() -> None:
    source = (
        "import os, django.db\n"
        "from channels.layers import get_channel_layer\n"
        "from . import console\n"
        "import importlib\n"
        "importlib.import_module('celery')\n"
        "__import__('riskdesk.services')\n"
        "import consolekit\n"
    )

    found = _forbidden_imports(source, "sample.py")

    assert found == [
        "sample.py:1 imports django.db",
        "sample.py:2 imports channels.layers",
        "sample.py:5 imports celery",
        "sample.py:6 imports riskdesk.services",
    ]


def test_no_engine_source_file_imports_django_or_the_console_apps() -> None:
    files = _engine_files()

    found = [hit for path in files for hit in _forbidden_imports(path.read_text(), str(path.relative_to(REPO_ROOT)))]

    assert len(files) > 3, "the scan found almost no engine files; is ENGINE_DIR right?"
    assert found == []


def _import_probe(modules: list[str], pythonpath: Path) -> dict:
    """Import `modules` in a fresh interpreter; report import failures and forbidden modules left in sys.modules."""
    script = (
        "import importlib, json, sys\n"
        "failed = {}\n"
        f"for name in {modules!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "    except Exception as exc:\n"
        "        failed[name] = f'{type(exc).__name__}: {exc}'\n"
        f"loaded = sorted(m for m in sys.modules if m.split('.')[0] in {FORBIDDEN!r})\n"
        "print(json.dumps({'failed': failed, 'loaded': loaded}))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=pythonpath,
        env={"PYTHONPATH": str(pythonpath), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_importing_every_engine_module_loads_no_django_or_console_module() -> None:
    # `__main__` modules run the engine when imported; the source scan above still covers them.
    modules = [_module_name(path) for path in _engine_files() if path.stem != "__main__"]

    report = _import_probe(modules, REPO_ROOT)

    assert "engine.protocol" in modules
    assert report["failed"] == {}, "every engine module must import cleanly to be checked"
    assert report["loaded"] == []


def test_the_import_probe_notices_a_module_that_pulls_in_django_indirectly(tmp_path: Path) -> None:
    (tmp_path / "fake_engine").mkdir()
    (tmp_path / "fake_engine" / "__init__.py").write_text("")
    # Registers the module the way `import django` would, without needing Django installed.
    (tmp_path / "fake_engine" / "sneaky.py").write_text(
        "import sys, types\nsys.modules['django.conf'] = types.ModuleType('x')\n"
    )
    (tmp_path / "fake_engine" / "clean.py").write_text("import json\n")

    report = _import_probe(["fake_engine.clean", "fake_engine.sneaky", "fake_engine.missing"], tmp_path)

    assert report["loaded"] == ["django.conf"]
    assert list(report["failed"]) == ["fake_engine.missing"]
