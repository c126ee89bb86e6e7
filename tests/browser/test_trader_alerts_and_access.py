"""The trader's desk page in real Chromium against a live daphne: alerts raised through the risk desk appear in the
overview's list as they are raised (only those meant for traders), and an open page stops showing the desk once
its user logs out elsewhere or loses the role (review findings 4 and 9)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import expect_heartbeat_received, log_in, send_heartbeat
from tests.conftest import PASSWORD

pytestmark = pytest.mark.browser
WAIT_MS = 15_000


def in_plain_thread(function, /, **kwargs):
    """Run `function` off Playwright's event-loop thread: publishing on commit uses async_to_sync, which refuses a
    thread with a running loop. The thread's own database connection is closed when it is done."""
    from django.db import connection

    def run():
        try:
            return function(**kwargs)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(run).result(timeout=30)


def open_desk(page, base_url: str, username: str) -> None:
    """The trading overview with its websocket greeted and subscribed (live.js marks <body> on "hello"), so a
    heartbeat sent now reaches it; then one heartbeat, received."""
    log_in(page, base_url, username, PASSWORD)
    page.goto(f"{base_url}/trading/")
    expect(page.locator("body")).to_have_attribute("data-live-resyncs", re.compile(r"^\d"), timeout=WAIT_MS)
    send_heartbeat()
    expect_heartbeat_received(page)


def test_alerts_for_traders_appear_on_the_overview_as_raised_newest_first_and_one_for_risk_only_never_does(
    page, live_console, trader, output_dir
):
    from riskdesk.services.alerts import publish_alerts, raise_alert

    # The topic's stored latest state lives in Redis and outlasts the database rows of earlier tests: publish it
    # again from this test's (empty) table, as the risk desk does after every change.
    in_plain_thread(publish_alerts)
    open_desk(page, live_console, trader.username)
    expect(page.locator("#alerts-list")).to_contain_text("No alerts for your role.")

    breach = in_plain_thread(
        raise_alert, kind="limit_breach", severity="critical", title="Position limit breached",
        audience=("risk_officer", "trader"),
    )  # fmt: skip
    risk_only = in_plain_thread(
        raise_alert, kind="engine_stale", severity="warning", title="Officers only", audience=("risk_officer",)
    )
    trigger = in_plain_thread(
        raise_alert, kind="trigger_fired", severity="warning", title="Drawdown trigger fired", audience=("trader",)
    )

    items = page.locator("#alerts-list li[data-alert-id]")
    expect(items).to_have_count(2, timeout=WAIT_MS)
    expect(items.nth(0)).to_have_attribute("data-alert-id", str(trigger.pk))
    expect(items.nth(1)).to_have_attribute("data-alert-id", str(breach.pk))
    expect(items.nth(1)).to_contain_text("Position limit breached")
    expect(page.locator(f'#alerts-list li[data-alert-id="{risk_only.pk}"]')).to_have_count(0)
    expect(page.locator("#alerts-list")).not_to_contain_text("Officers only")
    page.screenshot(path=str(output_dir / "alerts.png"), full_page=True)


def test_an_open_desk_page_goes_to_the_log_in_page_once_its_user_logs_out_in_another_tab(
    page, live_console, trader, output_dir
):
    open_desk(page, live_console, trader.username)
    other_tab = page.context.new_page()
    other_tab.goto(f"{live_console}/")

    other_tab.get_by_role("button", name="Log out").click()
    other_tab.wait_for_load_state()
    send_heartbeat()

    expect(page).to_have_url(re.compile(r"/login/"), timeout=WAIT_MS)
    expect(page.locator("#id_username")).to_be_visible()
    page.screenshot(path=str(output_dir / "after-logout.png"), full_page=True)


def test_an_open_desk_page_is_refused_once_its_user_loses_the_trader_role(page, live_console, trader, output_dir):
    from django.contrib.auth.models import Group

    open_desk(page, live_console, trader.username)

    trader.groups.remove(Group.objects.get(name="trader"))
    send_heartbeat()

    expect(page.locator("h1")).to_contain_text("403", timeout=WAIT_MS)
    expect(page.locator("#positions-body")).to_have_count(0)
    page.screenshot(path=str(output_dir / "after-role-removed.png"), full_page=True)
