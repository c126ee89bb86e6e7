"""The risk desk in headless Chromium against a real engine: a risk officer lowers a limit and sees the engine
acknowledge it, hits a strategy's kill switch and sees it HALTED with its orders gone, then resumes with a reason."""

from __future__ import annotations

import contextlib
import re
import subprocess
import sys
import time
import urllib.request
from decimal import Decimal

import pytest
from playwright.sync_api import expect

from engine.protocol import Side
from tests.bridge.conftest import BridgeProcess
from tests.browser.conftest import log_in
from tests.conftest import PASSWORD, ROOT, _make_user, free_port, subprocess_env, wait_for
from tests.engine_process import AS_BTC, engine_process  # noqa: F401 - the fixture
from tests.riskdesk.conftest import START_LIMITS, accepted, submit, working_orders

pytestmark = pytest.mark.browser


@contextlib.contextmanager
def serve_console(output_dir, **env: str):
    """daphne on the test database on a free port; yields its base URL."""
    port = free_port()
    log = open(output_dir / "daphne.log", "w")  # closed in the finally below
    process = subprocess.Popen(
        [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port), "console.asgi:application"],
        cwd=ROOT,
        env=subprocess_env(**env),
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
        except subprocess.TimeoutExpired:  # an open websocket can keep daphne from stopping
            process.kill()
            process.wait(timeout=20)
        log.close()


@pytest.fixture
def desk_console(transactional_db, output_dir):
    """daphne on the test database, no engine (for what needs none, like alerts)."""
    with serve_console(output_dir) as base_url:
        yield base_url


@pytest.fixture
def risk_console(transactional_db, engine_process, settings, output_dir):  # noqa: F811 - the imported fixture
    """daphne on the test database, pointed at a real engine with a manual strategy holding working orders."""
    from trading.models import Strategy
    from trading.services.reference import sync_reference_data

    engine = engine_process(strategies=[AS_BTC], limits=START_LIMITS)
    engine.apply_settings(settings)
    # Instruments and the configured strategy, as `bin/run` syncs them; the manual strategy the test trades.
    sync_reference_data(instruments_file=engine.instruments_file, engine_config_file=engine.config)
    Strategy.objects.get_or_create(strategy_id="manual", defaults={"name": "manual", "symbol": "BTCUSDT"})
    with serve_console(output_dir, **engine.env()) as base_url:
        yield base_url, engine


def test_a_risk_officer_lowers_a_limit_halts_a_strategy_and_resumes_it(page, risk_console, output_dir):
    base_url, engine = risk_console
    _make_user("rick_risk", "risk_officer")
    for i in range(2):
        assert accepted(submit(engine, f"resting-{i}", price=f"6000{i}.0"))
    log_in(page, base_url, "rick_risk", PASSWORD)

    page.goto(f"{base_url}/risk/")
    btc = page.locator('.scope-panel[data-scope="instrument:BTCUSDT"]')
    btc.get_by_role("link", name="Edit").click()
    page.fill("#id_max_order_quantity", "0.05")
    page.fill("#id_reason", "tighter while the book is thin")
    page.get_by_role("button", name="Propose").click()

    expect(page.locator(".flash")).to_contain_text("in force: engine acknowledged")
    row = page.locator('.scope-panel[data-scope="instrument:BTCUSDT"] tr[data-field="max_order_quantity"]')
    expect(row.locator('[data-role="engine"]')).to_have_text("0.05")
    expect(row.locator('[data-role="db"]')).to_have_text("0.05")
    page.screenshot(path=str(output_dir / "limit-acknowledged.png"), full_page=True)

    kill = page.locator('#kill-switches tr[data-scope="strategy:manual"]')
    kill.locator('input[name="reason"]').first.fill("quoting away from the market")
    kill.locator('input[name="confirm"][type="checkbox"]').check()
    kill.get_by_role("button", name="Halt").click()

    expect(page.locator(".flash")).to_contain_text("engine acknowledged, state HALTED")
    state = page.locator('.scope-panel[data-scope="strategy:manual"] [data-role="state"]')
    expect(state).to_have_text("HALTED")
    wait_for(lambda: not working_orders(engine, "manual"), timeout=30, what="the manual orders canceled")
    page.screenshot(path=str(output_dir / "halted.png"), full_page=True)

    resume = page.locator('#kill-switches tr[data-scope="strategy:manual"] .resume-form')
    resume.locator('input[name="reason"]').fill("prices checked, quoting again")
    resume.get_by_role("button", name="Resume").click()

    expect(page.locator(".flash")).to_contain_text("state ACTIVE")
    expect(state).to_have_text("ACTIVE")
    expect(page.locator('#actions tr[data-action="resume"] [data-role="ack"]')).to_contain_text("acknowledged")

    # An automatic trigger for the strategy: in force once the engine acknowledges it, the same on both sides.
    page.goto(f"{base_url}/risk/triggers/strategy:manual/")
    page.fill("#id_drawdown", "750")
    page.select_option("#id_drawdown_action", "REDUCING")
    page.fill("#id_reason", "cap the drawdown overnight")
    page.get_by_role("button", name="Send to the engine").click()

    expect(page.locator(".flash")).to_contain_text("Triggers strategy manual v1 in force: engine acknowledged")
    trigger = page.locator('#triggers tr[data-scope="strategy:manual"][data-field="drawdown"]')
    expect(trigger.locator('[data-role="engine"]')).to_have_text("750")
    expect(trigger.locator('[data-role="db"]')).to_have_text("750")
    page.screenshot(path=str(output_dir / "trigger-acknowledged.png"), full_page=True)


def test_an_alert_reaches_an_open_risk_desk_over_the_websocket_within_five_seconds(page, desk_console, output_dir):
    base_url = desk_console
    from concurrent.futures import ThreadPoolExecutor

    from riskdesk.services.alerts import raise_alert

    _make_user("rick_risk", "risk_officer")
    log_in(page, base_url, "rick_risk", PASSWORD)
    page.goto(f"{base_url}/risk/")
    expect(page.locator("#live-indicator")).to_have_attribute("data-state", "live", timeout=10_000)
    page.wait_for_timeout(500)  # the subscribe frame is sent on the socket's hello

    def raise_in_plain_thread():
        from django.db import connection, transaction

        try:
            # Two alerts committed together: the topic carries both, so neither hides the other.
            with transaction.atomic():
                first = raise_alert(kind="clock_offset", severity="warning", title="clock 4 ms off")
                return first, raise_alert(
                    kind="limit_breach", severity="warning", title="RISK_MAX_POSITION: test breach"
                )
        finally:
            connection.close()  # this thread's own connection, or the test database cannot be dropped

    with ThreadPoolExecutor(max_workers=1) as pool:  # async_to_sync refuses Playwright's event-loop thread
        first, alert = pool.submit(raise_in_plain_thread).result(timeout=10)

    expect(page.locator("body")).to_have_attribute("data-last-alert-id", str(alert.pk), timeout=5_000)
    expect(page.locator(f'#alerts tr[data-alert-id="{alert.pk}"]')).to_contain_text("test breach", timeout=5_000)
    expect(page.locator(f'#alerts tr[data-alert-id="{first.pk}"]')).to_contain_text("clock 4 ms off")
    page.screenshot(path=str(output_dir / "alert.png"), full_page=True)


def test_a_weakened_trigger_waits_until_a_second_officer_approves_it_on_the_desk(
    risk_console, browser, page, output_dir
):
    base_url, _engine = risk_console
    _make_user("rick_risk", "risk_officer")
    _make_user("rita_risk", "risk_officer")
    log_in(page, base_url, "rick_risk", PASSWORD)
    page.goto(f"{base_url}/risk/triggers/strategy:manual/")
    page.fill("#id_drawdown", "750")
    page.fill("#id_reason", "cap the drawdown")
    page.get_by_role("button", name="Send to the engine").click()
    expect(page.locator(".flash")).to_contain_text("Triggers strategy manual v1 in force")

    page.goto(f"{base_url}/risk/triggers/strategy:manual/")
    page.fill("#id_drawdown", "5000")
    page.fill("#id_reason", "wider for the open")
    page.get_by_role("button", name="Send to the engine").click()

    expect(page.locator(".flash")).to_contain_text("weaken drawdown: waiting for a second risk officer's approval")
    waiting = page.locator("#approvals tr[data-trigger-version]")
    expect(waiting).to_contain_text("another officer must approve")
    drawdown = page.locator('#triggers tr[data-scope="strategy:manual"][data-field="drawdown"]')
    expect(drawdown.locator('[data-role="engine"]')).to_have_text("750")

    context = browser.new_context(viewport={"width": 1360, "height": 860})
    try:
        second = context.new_page()
        log_in(second, base_url, "rita_risk", PASSWORD)
        second.goto(f"{base_url}/risk/")
        second.locator("#approvals tr[data-trigger-version]").get_by_role("button", name="Approve").click()

        expect(second.locator(".flash")).to_contain_text("Triggers strategy manual v2 in force: engine acknowledged")
        row = second.locator('#triggers tr[data-scope="strategy:manual"][data-field="drawdown"]')
        expect(row.locator('[data-role="engine"]')).to_have_text("5000")
        second.screenshot(path=str(output_dir / "trigger-approved.png"), full_page=True)
    finally:
        context.close()


def top_of_book(engine) -> tuple[Decimal, Decimal]:
    """The engine's latest best bid and ask (BTCUSDT ticks are 0.1)."""
    from engine.protocol import TopOfBookChanged

    for envelope in reversed(engine.events()):
        event = envelope.event
        if type(event) is TopOfBookChanged and event.bid_price and event.ask_price:
            return Decimal(event.bid_price) / 10, Decimal(event.ask_price) / 10
    raise AssertionError("no top of book from the engine yet")


def quote_until_shown_on_the_ladder(engine, ladder, timeout_s: float = 60.0) -> None:
    """Keep manual quotes a little away from the touch on both sides until the trader's ladder marks one as ours:
    the simulated market moves and may fill them first, in which case new ones are placed."""
    deadline = time.monotonic() + timeout_s
    placed = 0
    while time.monotonic() < deadline:
        if ladder.locator("#ladder-body .ours").count():
            return
        if not working_orders(engine, "manual"):
            bid, ask = top_of_book(engine)
            for offset in (Decimal("0.3"), Decimal("0.6")):
                placed += 1
                assert accepted(submit(engine, f"bid-{placed}", price=str(bid - offset), quantity="0.001"))
                assert accepted(
                    submit(engine, f"ask-{placed}", price=str(ask + offset), quantity="0.001", side=Side.SELL)
                )
        ladder.wait_for_timeout(300)
    raise AssertionError("no manual quote stayed on the book long enough to show on the ladder")


def test_a_strategy_kill_switch_empties_the_traders_ladder_and_shows_halted_on_the_traders_console(
    browser, risk_console, output_dir
):
    base_url, engine = risk_console
    bridge = BridgeProcess(engine, output_dir).start()  # publishes the live topics the trader's pages show
    _make_user("rick_risk", "risk_officer")
    _make_user("tina_trader", "trader")
    wait_for(lambda: engine.snapshot().seq > 50, timeout=30, what="market data from the engine")
    trader = browser.new_context(viewport={"width": 1360, "height": 860})
    officer = browser.new_context(viewport={"width": 1360, "height": 860})
    try:
        ladder = trader.new_page()
        log_in(ladder, base_url, "tina_trader", PASSWORD)
        overview = trader.new_page()
        overview.goto(f"{base_url}/trading/")
        ladder.goto(f"{base_url}/trading/instrument/BTCUSDT/")
        quote_until_shown_on_the_ladder(engine, ladder)
        ladder.screenshot(path=str(output_dir / "ladder-before.png"), full_page=True)

        desk = officer.new_page()
        log_in(desk, base_url, "rick_risk", PASSWORD)
        desk.goto(f"{base_url}/risk/")
        # Utilisation bars follow the engine's RiskUtilisation as the bridge publishes it.
        expect(desk.locator("body")).to_have_attribute("data-utilisation-seq", re.compile(r"^\d+$"), timeout=10_000)
        kill = desk.locator('#kill-switches tr[data-scope="strategy:manual"]')
        kill.locator('input[name="reason"]').first.fill("stale quotes")
        kill.locator('input[name="confirm"][type="checkbox"]').check()
        kill.get_by_role("button", name="Halt").click()
        expect(desk.locator(".flash")).to_contain_text("engine acknowledged, state HALTED")

        expect(ladder.locator("#ladder-body .ours")).to_have_count(0, timeout=10_000)
        assert not working_orders(engine, "manual")
        expect(overview.locator("#states-body")).to_contain_text("HALTED", timeout=10_000)
        expect(overview.locator("#states-body")).to_contain_text("stale quotes")
        ladder.screenshot(path=str(output_dir / "ladder-after.png"), full_page=True)
        overview.screenshot(path=str(output_dir / "trader-overview-halted.png"), full_page=True)

        resume = desk.locator('#kill-switches tr[data-scope="strategy:manual"] .resume-form')
        resume.locator('input[name="reason"]').fill("quotes checked")
        resume.get_by_role("button", name="Resume").click()
        expect(desk.locator(".flash")).to_contain_text("state ACTIVE")
        expect(overview.locator("#states-body")).to_contain_text("ACTIVE", timeout=10_000)
        desk.screenshot(path=str(output_dir / "desk-resumed.png"), full_page=True)
    finally:
        trader.close()
        officer.close()
        bridge.cleanup()


def test_the_live_position_bar_reads_100_percent_in_instrument_units_when_the_gate_starts_denying(
    page, risk_console, output_dir
):
    from riskdesk.services import limits

    base_url, engine = risk_console
    bridge = BridgeProcess(engine, output_dir).start()  # publishes the engine's RiskUtilisation as topic "risk"
    officer = _make_user("rick_risk", "risk_officer")
    try:
        # 0.0065 is off the 0.001 lot grid: the gate enforces 6 lots.
        firm = dict(START_LIMITS[0][1], max_position="0.0065")
        version = limits.propose_limits(
            actor=officer, kind="firm", name="", limits=firm, base_version=0, reason="cap the book"
        )
        assert version.status == "in_force", version.engine_reason
        assert accepted(submit(engine, "p-1", quantity="0.003"))
        assert accepted(submit(engine, "p-2", quantity="0.003", price="59990.0"))
        assert submit(engine, "p-3", quantity="0.001", price="59980.0").code == "RISK_MAX_POSITION"
        log_in(page, base_url, "rick_risk", PASSWORD)
        page.goto(f"{base_url}/risk/")
        row = page.locator('.scope-panel[data-scope="firm"] tr[data-field="max_position"]')
        expect(row).to_have_attribute("data-util", "position_quantity")

        # What the page's script draws from a "risk" update, read as it sets the update's seq (before any
        # server-rendered refresh can replace it).
        def drawn_by_the_script() -> str:
            return page.evaluate(
                """() => new Promise((resolve) => {
                    const observer = new MutationObserver(() => {
                        const firm = document.querySelector('.scope-panel[data-scope="firm"]');
                        const row = firm.querySelector('tr[data-field="max_position"]');
                        observer.disconnect();
                        const held = document.querySelector(
                            '#exposure tr[data-slug="firm"] [data-figure="position_quantity"]');
                        resolve([row.querySelector(".pct").textContent, row.querySelector(".bar").className,
                                 held.textContent].join("|"));
                    });
                    observer.observe(document.body, {attributes: true, attributeFilter: ["data-utilisation-seq"]});
                })"""
            )

        wait_for(lambda: drawn_by_the_script() == "100 %|bar breach|0.006", timeout=30, what="the live bar at 100 %")
        page.screenshot(path=str(output_dir / "position-bar-100.png"), full_page=True)
    finally:
        bridge.cleanup()
