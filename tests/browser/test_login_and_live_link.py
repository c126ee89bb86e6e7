"""A user logs in through the page in real Chromium and watches the live link come up."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import expect_heartbeat_received, log_in, send_heartbeat
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser


def test_a_trader_logs_in_sees_their_desk_and_the_heartbeat_arrives(page, live_console, trader, output_dir):
    log_in(page, live_console, trader.username, PASSWORD)
    expect(page.locator("h1")).to_contain_text(f"Welcome, {trader.username}")
    expect(page.locator("#live-text")).to_contain_text("no heartbeat yet")

    send_heartbeat()

    expect_heartbeat_received(page)
    expect(page.locator("#live-text")).to_contain_text("live · heartbeat")
    expect(page.locator("a.desk")).to_have_count(1)
    expect(page.locator("a.desk h2")).to_have_text("Trading desk")
    page.screenshot(path=str(output_dir / "home.png"), full_page=True)


def test_a_wrong_password_is_refused_with_a_message(page, live_console, trader, output_dir):
    log_in(page, live_console, trader.username, "not-the-password")

    expect(page.locator("[role=alert]")).to_contain_text("did not match")
    page.screenshot(path=str(output_dir / "refused.png"))


def test_a_compliance_officer_is_refused_the_trading_desk(page, live_console, compliance_officer):
    log_in(page, live_console, compliance_officer.username, PASSWORD)
    expect(page.locator("h1")).to_contain_text("Welcome")

    response = page.goto(f"{live_console}/trading/")

    assert response.status == 403
    expect(page.locator("h1")).to_contain_text("403")


def test_the_live_indicator_turns_stale_when_heartbeats_stop(page, live_console, risk_officer):
    log_in(page, live_console, risk_officer.username, PASSWORD)
    expect(page.locator("#live-text")).to_contain_text("no heartbeat yet")
    send_heartbeat()
    expect_heartbeat_received(page)

    # No further heartbeats: after the 6 s threshold the page must say the data is stale.
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "stale", timeout=15_000)
    expect(page.locator("#live-text")).to_contain_text("stale")
