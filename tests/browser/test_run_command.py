"""The README's run command on nothing configured: it brings up the whole system, and Ctrl-C stops it all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import expect_heartbeat_received, log_in
from tests.conftest import ROOT, free_port, wait_for

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Settings the test process put into its own environment; the run command must choose its own.
NOT_INHERITED = {
    "DATABASE_URL",
    "REDIS_URL",
    "SECRET_KEY",
    "DJANGO_SETTINGS_MODULE",
    "CHANNEL_LAYER_PREFIX",
    "CELERY_TASK_DEFAULT_QUEUE",
    "DEBUG",
    "VAR_DIR",
}


def healthz(base_url: str) -> dict | None:
    try:
        with urllib.request.urlopen(f"{base_url}/healthz", timeout=2) as response:
            return json.load(response)
    except OSError:
        return None


def test_bin_run_starts_the_system_a_demo_user_logs_in_and_ctrl_c_stops_everything(page, tmp_path, output_dir):
    port = free_port()
    var_dir = tmp_path / "var"
    env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    env.update(VAR_DIR=str(var_dir), WEB_PORT=str(port), DEMO_PASSWORD="demo-password-for-this-test")
    log_path = output_dir / "run.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            ["bin/run"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    base_url = f"http://127.0.0.1:{port}"
    try:
        health = wait_for(
            lambda: (h := healthz(base_url)) and h["checks"]["celery"]["status"] == "ok" and h,
            timeout=240,
            interval=1,
            what="bin/run to report a healthy system with a worker",
        )
        assert health["status"] == "ok"
        # The engine answers the console's heartbeats over CURVE (beat -> worker -> engine client -> engine).
        wait_for(
            lambda: (h := healthz(base_url)) and h["checks"]["engine"]["status"] == "ok",
            timeout=120,
            interval=1,
            what="the engine to answer the console's heartbeat",
        )

        log_in(page, base_url, "risk", "demo-password-for-this-test")
        expect(page.locator("h1")).to_contain_text("Welcome, risk")
        # This heartbeat comes from the real beat -> worker -> Redis -> daphne path of the run command.
        expect_heartbeat_received(page, timeout_ms=20_000)
        page.screenshot(path=str(output_dir / "home.png"), full_page=True)
    finally:
        os.killpg(process.pid, signal.SIGINT)
        returncode = process.wait(timeout=90)

    log_text = log_path.read_text()
    assert "logged on" in log_text  # the engine's FIX session to the venue process
    assert "PostgreSQL (embedded) stopped" in log_text
    assert "Redis stopped" in log_text
    leftovers = subprocess.run(["pgrep", "-f", str(var_dir)], capture_output=True, text=True, check=False).stdout
    assert leftovers == "", f"processes still running: {leftovers}"
    assert returncode in (0, 130), log_text[-2000:]
