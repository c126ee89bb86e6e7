"""Configuration is read from the environment and a bad value stops start-up naming the variable."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

import pytest

from tests.conftest import ROOT

GOOD_ENV = {
    "DATABASE_URL": "postgresql://postgres@127.0.0.1:5432/hft",
    "REDIS_URL": "redis://127.0.0.1:6379/0",
    "SECRET_KEY": secrets.token_urlsafe(50),
}


def run_manage(*args: str, settings_module: str = "console.settings.dev", **env_overrides: str):
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL", "DEBUG"}}
    env.update(GOOD_ENV)
    env.update(env_overrides)
    env["DJANGO_SETTINGS_MODULE"] = settings_module
    env["VAR_DIR"] = str(ROOT / "var" / "settings-test")
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("DATABASE_URL", "mysql://root@localhost/hft"),
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1:notaport/hft"),
        ("DATABASE_URL", "postgresql://postgres@127.0.0.1:5432"),
        ("DATABASE_URL", "not a url at all"),
        ("REDIS_URL", "http://127.0.0.1:6379"),
        ("DEBUG", "maybe"),
        ("ENGINE_COMMAND_ENDPOINT", "tcp://127.0.0.1"),
        ("ENGINE_TIMEOUT_MS", "fast"),
        ("ALLOWED_HOSTS", " , "),
        ("ORDER_RETENTION_DAYS", "forever"),
        ("TIMESERIES_RETENTION_DAYS", "0"),
        ("COMPLIANCE_CLOCK_THRESHOLD_US", "fast"),
    ],
)
def test_a_bad_value_stops_startup_with_a_message_naming_the_variable(variable, value):
    result = run_manage("check", **{variable: value})

    assert result.returncode != 0
    assert "configuration error" in result.stderr
    assert variable in result.stderr
    assert "Traceback" not in result.stderr


def test_a_missing_database_url_stops_startup_naming_it():
    env_without = {key: value for key, value in GOOD_ENV.items() if key != "DATABASE_URL"}
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    env.update(env_without, DJANGO_SETTINGS_MODULE="console.settings.dev", VAR_DIR=str(ROOT / "var" / "settings-test"))

    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert result.returncode != 0
    assert "DATABASE_URL is not set" in result.stderr


def test_production_settings_pass_the_deployment_checklist():
    result = run_manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        settings_module="console.settings.production",
        ALLOWED_HOSTS="console.example.com",
        SECRET_KEY=secrets.token_urlsafe(64),
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_run_with_debug_on():
    result = run_manage(
        "check", settings_module="console.settings.production", DEBUG="true", SECRET_KEY=secrets.token_urlsafe(64)
    )

    assert result.returncode != 0
    assert "DEBUG must be false" in result.stderr


def test_production_refuses_a_short_secret_key():
    result = run_manage("check", settings_module="console.settings.production", SECRET_KEY="short")

    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr
