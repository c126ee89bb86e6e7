"""The compose file and Procfile only name commands that exist in this project (no Docker engine here)."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker" / "compose.yml").read_text())

# Processes whose code later issues build. Each entry must really be missing: once the command
# exists this test fails, and the entry has to go, so the list can only shrink.
NOT_YET_BUILT: dict[str, str] = {}


def module_exists(dotted: str) -> bool:
    path = ROOT.joinpath(*dotted.split("."))
    return path.with_suffix(".py").exists() or (path / "__main__.py").exists() or (path / "__init__.py").exists()


def management_command_exists(name: str) -> bool:
    return any(ROOT.glob(f"*/management/commands/{name}.py"))


def command_target_exists(argv: list[str]) -> bool:
    """Whether the program a command line runs is part of the project (or an installed tool it configures)."""
    program = argv[0]
    if program == "daphne":
        module, _, attribute = argv[-1].partition(":")
        return module_exists(module) and attribute == "application"
    if program == "celery":
        return argv[argv.index("-A") + 1] == "console" and (ROOT / "console" / "celery.py").exists()
    if program == "python" and argv[1] == "-m":
        module = argv[2]
        return (ROOT.joinpath(*module.split(".")) / "__main__.py").exists()
    if program == "python" and argv[1] == "manage.py":
        return argv[2] in {"migrate", "collectstatic"} or management_command_exists(argv[2])
    return False


def project_services():
    return {name: spec for name, spec in COMPOSE["services"].items() if "build" in spec}


def test_compose_has_the_infrastructure_and_every_process():
    services = set(COMPOSE["services"])

    assert {"db", "redis", "web", "worker", "beat", "engine", "venue", "bridge"} <= services
    assert "timescaledb" in COMPOSE["services"]["db"]["image"]


@pytest.mark.parametrize("service", sorted(project_services()))
def test_each_compose_service_runs_a_command_that_exists_in_the_project(service):
    argv = project_services()[service]["command"]

    exists = command_target_exists(argv)

    if service in NOT_YET_BUILT:
        assert not exists, f"{service} exists now: remove it from NOT_YET_BUILT"
    else:
        assert exists, f"{service}: {argv} names nothing in the project"


def test_every_procfile_process_runs_a_command_that_exists_in_the_project():
    for line in (ROOT / "Procfile").read_text().splitlines():
        name, _, command = line.partition(":")
        argv = [word for word in shlex.split(command) if not word.startswith("${")]

        assert command_target_exists(argv), f"Procfile {name}: {command}"


def test_the_production_image_installs_the_pinned_requirements():
    dockerfile = (ROOT / "docker" / "Dockerfile").read_text()

    assert "pip install -r requirements.txt" in dockerfile
