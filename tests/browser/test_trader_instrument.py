"""The instrument page in headless Chromium on the real engine, bridge and daphne: the 10-level ladder fills from
the engine's book depth, our own resting order is marked on its level, and the day's charts are drawn."""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from engine.protocol import CommandAccepted, OrderType, Side, SubmitOrder, TimeInForce
from tests.browser.conftest import log_in
from tests.browser.test_trader_console import WAIT_MS, trader_console  # noqa: F401 - the fixture
from tests.conftest import PASSWORD
from tests.engine_process import engine_process  # noqa: F401 - the fixture under trader_console

pytestmark = pytest.mark.browser


def rest_an_ask(engine, page) -> str:
    """A manual sell 5 ticks above the best ask shown on the page: at most five levels can sit in front of it, so it
    is inside the ten the ladder shows, and a buyer lifting the touch does not take it at once."""
    ask = Decimal(page.locator("#tob-ask").inner_text().replace(",", "")) + Decimal("0.5")
    client = engine.client()
    cid = f"ask-{time.monotonic_ns()}"
    reply = client.request(
        engine.command(
            SubmitOrder, operator="tina_trader", strategy_id="manual", client_order_id=cid, symbol="BTCUSDT",
            side=Side.SELL, order_type=OrderType.LIMIT, time_in_force=TimeInForce.GTC, quantity=Decimal("0.001"),
            price=ask,
        )
    )  # fmt: skip
    assert type(reply) is CommandAccepted, reply
    return cid


def test_the_ladder_shows_ten_levels_a_side_and_marks_our_resting_order(page, trader_console, trader, output_dir):  # noqa: F811
    base_url, engine = trader_console
    log_in(page, base_url, trader.username, PASSWORD)
    page.goto(f"{base_url}/trading/instrument/BTCUSDT/")
    expect(page.locator("#ladder-body tr.bid")).to_have_count(10, timeout=WAIT_MS)
    expect(page.locator("#ladder-body tr.ask")).to_have_count(10)
    expect(page.locator("#tob-ask")).not_to_have_text("—", timeout=WAIT_MS)

    # The background flow trades through the touch now and then; an ask it takes before the page shows it is
    # replaced by another, until one rests long enough (every try is a real order the engine accepted).
    deadline = time.monotonic() + 90
    while not page.locator("#ladder-body tr.ask .ours").count():
        assert time.monotonic() < deadline, "no resting ask of ours was ever marked on the ladder"
        cid = rest_an_ask(engine, page)
        page.wait_for_timeout(1500)

    expect(page.locator("#ladder-body tr.ask .ours").first).to_contain_text("◆")
    expect(page.locator("#orders-body tr", has_text=cid.split("-")[0]).first).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#price-chart canvas")).to_have_count(1)
    expect(page.locator("#inventory-chart canvas")).to_have_count(1)
    assert page.locator("body").get_attribute("data-chart-ready") == "1"
    page.screenshot(path=str(output_dir / "instrument.png"), full_page=True)
