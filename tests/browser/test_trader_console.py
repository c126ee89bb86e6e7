"""A trader at the trading desk in headless Chromium, against the whole real path: an engine process with its
in-process venue and background flow, `manage.py engine_bridge` writing PostgreSQL and publishing live topics, and
daphne serving the console. Screenshots go under test-results/<test>/."""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from tests.bridge.conftest import BridgeProcess
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, ROOT, free_port, subprocess_env, wait_for
from tests.engine_process import AS_BTC, engine_process  # noqa: F401 - the fixture

pytestmark = pytest.mark.browser
WAIT_MS = 30_000


@pytest.fixture
def trader_console(transactional_db, engine_process, settings, output_dir):  # noqa: F811 - the imported fixture
    """(base_url, engine): daphne and the bridge on the test database, both pointed at a real engine that charges
    a taker fee (so a fill moves P&L by a known amount)."""
    from trading.services.reference import sync_reference_data

    engine = engine_process(strategies=[AS_BTC], engine={"taker_fee_bps": "4", "maker_fee_bps": "0"})
    engine.apply_settings(settings)
    sync_reference_data(instruments_file=engine.instruments_file, engine_config_file=engine.config)
    bridge = BridgeProcess(engine, output_dir).start()
    port = free_port()
    log = open(output_dir / "daphne.log", "w")  # closed in the finally below
    daphne = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"],
        cwd=ROOT,
        env=subprocess_env(**engine.env()),
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
        bridge.wait_for_checkpoint(1)
        yield base_url, engine
    finally:
        daphne.terminate()
        daphne.wait(timeout=20)
        log.close()
        bridge.cleanup()


def filled(client_order_id: str) -> bool:
    from trading.models import Fill, Order

    def settled():
        order = Order.objects.filter(client_order_id=client_order_id).first()
        return (
            order
            if order is not None and order.status in ("FILLED", "EXPIRED", "CANCELED", "REJECTED", "DENIED")
            else None
        )

    order = wait_for(settled, timeout=30, what=f"the bridge to record the outcome of {client_order_id}")
    return order.status == "FILLED" and Fill.objects.filter(client_order_id=client_order_id).exists()


def send_order(page, *, order_type: str, quantity: str, price: str = "", tif: str = "GTC", side: str = "BUY"):
    page.select_option("#id_strategy_id", "manual")
    page.select_option("#id_symbol", "BTCUSDT")
    page.check(f"input[name=side][value={side}]")
    page.select_option("#id_order_type", order_type)
    page.select_option("#id_time_in_force", tif)
    page.fill("#id_quantity", quantity)
    page.fill("#id_price", price)
    page.fill("#id_reason", f"browser test {order_type.lower()}")
    page.click("#ticket-submit")


def test_a_trader_places_and_cancels_an_order_then_sees_position_and_pnl_change_after_a_fill(
    page, trader_console, trader, output_dir
):
    base_url, _engine = trader_console
    log_in(page, base_url, trader.username, PASSWORD)
    page.on("dialog", lambda dialog: dialog.accept())  # the cancel buttons ask for confirmation

    page.goto(f"{base_url}/trading/ticket/")
    send_order(page, order_type="LIMIT", quantity="0.002", price="60000.0")
    reply = page.locator("#ticket-card .reply.ok")
    expect(reply).to_contain_text("Engine accepted", timeout=WAIT_MS)
    order_id = reply.locator(".mono").inner_text()
    row = page.locator(f'#orders-body tr[data-key="{order_id}"]')
    expect(row).to_contain_text("60,000", timeout=WAIT_MS)  # the bridge published it as working
    page.screenshot(path=str(output_dir / "order-working.png"), full_page=True)

    row.get_by_role("button", name="Cancel").click()
    expect(page.locator("#action-result .reply.ok")).to_contain_text("Engine accepted", timeout=WAIT_MS)
    expect(row).to_have_count(0, timeout=WAIT_MS)

    # The simulated book is thin: a market IOC meeting an empty ask side expires unfilled. Send another until one
    # fills (the bridge's fill row is the proof), as a trader would.
    previous = order_id
    sent_ids = [order_id]
    for _attempt in range(8):
        send_order(page, order_type="MARKET", quantity="0.002", tif="IOC")
        sent = page.locator("#ticket-card .reply.ok .mono")
        expect(sent).not_to_have_text(previous, timeout=WAIT_MS)  # this order's reply, not the last one's
        previous = sent.inner_text()
        sent_ids.append(previous)
        if filled(previous):
            break
    else:
        raise AssertionError("no market order filled in 8 tries")

    # What the page must show is what this test's fills add up to (an IOC that expired may still have filled in
    # part). Only the orders this test sent: fills committed by an earlier test of the run (the bridge writes
    # outside the test's transaction, and the same engine id and strategy are used by every test) are not ours,
    # and summing them once made the expected position 0.007 while the page rightly showed 0.002.
    from trading.models import Fill

    fills = list(Fill.objects.filter(strategy_id="manual", client_order_id__in=sent_ids))
    quantity = sum((f.quantity for f in fills), Decimal(0))
    fees = sum((f.commission for f in fills), Decimal(0)).quantize(Decimal("0.01"))
    assert fees > 0  # 4 bps taker fee on 0.002 BTC near 65,000 is 0.05

    page.goto(f"{base_url}/trading/")
    position = page.locator('#positions-body tr[data-key="manual/BTCUSDT"]')
    expect(position).to_contain_text(f"{quantity.normalize():f}", timeout=WAIT_MS)
    expect(page.locator("#pnl-fees")).to_have_text(f"{fees:f}", timeout=WAIT_MS)
    expect(page.locator("#pnl-total")).not_to_have_text("0.00")
    expect(page.locator("#fills-body")).to_contain_text("BUY")
    expect(page.locator("body")).to_have_attribute("data-engine-state", "live", timeout=WAIT_MS)
    expect(page.locator("#engine-banner")).to_be_hidden()
    page.screenshot(path=str(output_dir / "overview-after-fill.png"), full_page=True)

    page.goto(f"{base_url}/trading/blotter/?kind=orders")
    page.select_option("#blotter-filters select[name=status]", "CANCELED")
    page.click("#blotter-filters button[type=submit]")
    expect(page.locator("#blotter-table")).to_contain_text(order_id, timeout=WAIT_MS)
    expect(page.locator("#blotter-table")).not_to_contain_text("FILLED")
    page.screenshot(path=str(output_dir / "blotter-canceled.png"), full_page=True)


def test_a_trader_changes_a_parameter_is_refused_an_invalid_one_and_stops_the_strategy(
    page, trader_console, trader, output_dir
):
    base_url, _engine = trader_console
    log_in(page, base_url, trader.username, PASSWORD)
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto(f"{base_url}/trading/strategy/as-btc/")

    page.fill("#id_p_gamma", "0.07")
    page.fill("#params-form #id_reason", "narrower spread")
    page.click("#params-submit")
    expect(page.locator("#strategy-params .reply.ok")).to_contain_text("parameters now version 2", timeout=WAIT_MS)
    page.screenshot(path=str(output_dir / "params-accepted.png"), full_page=True)

    page.fill("#id_p_gamma", "0")
    page.fill("#params-form #id_reason", "try zero")
    page.click("#params-submit")
    error = page.locator('.field-error[data-field="p_gamma"]')
    expect(error).to_contain_text("STRATEGY_PARAM_INVALID", timeout=WAIT_MS)
    expect(page.locator("#strategy-params .reply.refused")).to_contain_text("Refused: STRATEGY_PARAM_INVALID")
    page.screenshot(path=str(output_dir / "params-refused.png"), full_page=True)

    page.fill("#strategy-action-form #id_reason", "open the book")
    page.click("#strategy-start")
    expect(page.locator("#strategy-state")).to_have_text("RUNNING", timeout=WAIT_MS)
    page.fill("#strategy-action-form #id_reason", "news in five minutes")
    page.click("#strategy-stop")
    expect(page.locator("#strategy-control .reply.ok")).to_contain_text("strategy STOPPED", timeout=WAIT_MS)
    expect(page.locator("#strategy-state")).to_have_text("STOPPED", timeout=WAIT_MS)
    expect(page.locator("#params-history")).to_contain_text("narrower spread", timeout=WAIT_MS)
    page.screenshot(path=str(output_dir / "strategy-stopped.png"), full_page=True)


def test_the_desk_shows_stale_then_engine_down_when_the_engine_stops_beating(page, trader_console, trader, output_dir):
    base_url, engine = trader_console
    log_in(page, base_url, trader.username, PASSWORD)
    page.goto(f"{base_url}/trading/")
    expect(page.locator("body")).to_have_attribute("data-engine-state", "live", timeout=WAIT_MS)

    engine.pause()  # SIGSTOP: no more engine heartbeats reach the bridge
    try:
        expect(page.locator("#engine-banner")).to_contain_text("Stale data", timeout=WAIT_MS)
        page.screenshot(path=str(output_dir / "stale.png"), full_page=True)
        expect(page.locator("#engine-banner")).to_contain_text("Engine down", timeout=WAIT_MS)
        expect(page.locator("body")).to_have_attribute("data-engine-state", "down")
        page.screenshot(path=str(output_dir / "engine-down.png"), full_page=True)
    finally:
        engine.resume()

    expect(page.locator("body")).to_have_attribute("data-engine-state", "live", timeout=WAIT_MS)
    expect(page.locator("#engine-banner")).to_be_hidden()


@pytest.mark.parametrize("role", ["risk_officer", "compliance_officer"])
def test_risk_and_compliance_users_cannot_reach_the_order_ticket(page, live_console, request, role, output_dir):
    user = request.getfixturevalue(role)
    log_in(page, live_console, user.username, PASSWORD)
    expect(page.locator("h1")).to_contain_text("Welcome")

    response = page.goto(f"{live_console}/trading/ticket/")

    assert response.status == 403
    expect(page.locator("h1")).to_contain_text("403")
    page.screenshot(path=str(output_dir / "ticket-refused.png"))
    assert not re.search(r"Send order", page.content())
