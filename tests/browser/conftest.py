"""Real headless Chromium (Debian's package) driven by Playwright, and a live console to point it at."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.conftest import ROOT, free_port, subprocess_env, wait_for

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium keeps dialling out, which this closed network refuses.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
RESULTS = ROOT / "test-results"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is not installed; bin/test installs it (bin/setup test)")
    from playwright.sync_api import sync_playwright

    # Playwright's sync API runs an event loop in this thread, which Django's async-safety check
    # mistakes for async code; the test's own database calls are synchronous, so allow them while
    # the browser lives, and only then (module scope keeps the loop away from other test modules).
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
            yield browser
            browser.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def output_dir(request) -> Path:
    """test-results/<test name>/ — screenshots land here."""
    folder = RESULTS / re.sub(r"[^\w.-]+", "_", request.node.nodeid.split("::", 1)[-1])
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def page(browser, output_dir):
    context = browser.new_context(viewport={"width": 1360, "height": 860})
    page = context.new_page()
    yield page
    page.screenshot(path=str(output_dir / "final.png"), full_page=True)
    context.close()


@pytest.fixture
def live_console(transactional_db, output_dir):
    """daphne serving the console on a free port against the test database (committed data only)."""
    port = free_port()
    log = open(output_dir / "daphne.log", "w")  # closed in the finally below
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"],
        cwd=ROOT,
        env=subprocess_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base_url = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        try:
            with urllib.request.urlopen(f"{base_url}/login/", timeout=1) as response:
                return response.status == 200
        except OSError:
            return False

    try:
        wait_for(answers, timeout=60, what="daphne to serve the login page")
        yield base_url
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            # A daphne left running keeps the test database open and the run cannot drop it at the end.
            process.kill()
            process.wait(timeout=20)
        log.close()


def log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    page.click("button[type=submit]")


def send_heartbeat() -> None:
    """Broadcast a console heartbeat from a plain thread (async_to_sync refuses Playwright's loop thread)."""
    from concurrent.futures import ThreadPoolExecutor

    from console.realtime import broadcast_heartbeat

    with ThreadPoolExecutor(max_workers=1) as pool:
        pool.submit(broadcast_heartbeat, source="test").result(timeout=10)


def expect_heartbeat_received(page, *, timeout_ms: int = 10_000) -> None:
    """The page's websocket delivered a heartbeat (live.js records its timestamp on <body>)."""
    from playwright.sync_api import expect

    expect(page.locator("body")).to_have_attribute("data-last-heartbeat", re.compile(r"^\d"), timeout=timeout_ms)
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live")
