"""The trading desk's pages rendered from rows in the real database (no engine needed to read)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from decimal import Decimal
from urllib.parse import urlencode

import pytest
from asgiref.sync import async_to_sync
from django.http import QueryDict
from django.test import Client

from compliance.models import AuditAction, AuditEvent
from tests.trading_console.conftest import insert_fill, make_order

pytestmark = pytest.mark.django_db


async def collect(response) -> bytes:
    # The download is an async stream (served by daphne without buffering); the sync test client hands it back
    # as is, so read it on an event loop. Its database reads run back on this thread, inside the test's transaction.
    return b"".join([chunk async for chunk in response.streaming_content])


@pytest.fixture
def browser(trader) -> Client:
    client = Client()
    client.force_login(trader)
    return client


def test_the_overview_shows_todays_pnl_positions_working_orders_fills_and_states(browser, desk):
    page = browser.get("/trading/").content.decode()

    assert 'id="pnl-total">1,230.50<' in page  # 1234.5 - 3.25 - 0.75, formatted
    assert 'class="value neg" id="pnl-unrealized">\u22123.25<' in page
    assert "0.004" in page and "65,000.1" in page  # position and average price
    assert 'data-key="w-1"' in page and "65,010" in page  # the working order
    assert 'data-key="f-1"' not in page  # a filled order is not working
    assert "x-1" not in page and "f-1" in page  # fills table shows the order id
    assert "REDUCING" in page and "inventory review" in page
    assert 'href="/trading/strategy/as-btc/"' in page
    assert 'data-page="overview"' in page


def test_the_overview_without_any_trading_says_so_rather_than_showing_blanks(browser, db):
    page = browser.get("/trading/").content.decode()

    assert "No positions today." in page
    assert "No working orders." in page
    assert "Firm ACTIVE" in page
    assert 'id="pnl-total">0.00<' in page


def test_the_instrument_page_carries_the_days_chart_data_and_our_orders_for_the_ladder(browser, desk):
    response = browser.get("/trading/instrument/BTCUSDT/")
    page = response.content.decode()

    assert response.status_code == 200
    chart = response.context["chart"]
    assert len(chart["mid"]) == 5 and chart["mid"][0][1] == "65000.100000000000"
    assert [q[2] for q in chart["quotes"]] == ["BUY", "SELL"]
    assert [row[1] for row in chart["inventory"]] == ["0.002000000000", "0.004000000000"]
    assert response.context["orders_json"][0]["client_order_id"] == "w-1"
    assert 'id="chart-data"' in page and "uPlot.iife.min.js" in page
    assert "65,004.2" in page  # the latest ask from the newest tick


def test_an_unknown_instrument_is_a_404(browser, desk):
    assert browser.get("/trading/instrument/NOPE/").status_code == 404


def test_the_strategy_page_shows_state_a_typed_params_form_and_the_history_with_who_and_why(browser, desk):
    response = browser.get("/trading/strategy/as-btc/")
    page = response.content.decode()
    form = response.context["params_form"]

    assert response.status_code == 200
    assert 'id="strategy-state">RUNNING<' in page
    assert type(form.fields["p_gamma"]).__name__ == "DecimalField"
    assert type(form.fields["p_order_size"]).__name__ == "IntegerField"
    assert type(form.fields["p_allow_cross"]).__name__ == "BooleanField"
    assert type(form.fields["p_horizon_mode"]).__name__ == "CharField"
    assert "tighter" in page and "tina" in page and "Roll back to v1" in page
    assert "Roll back to v2" not in page  # the version in force is marked, not offered


def test_the_blotter_filters_orders_by_side_and_status(browser, desk):
    make_order("w-2", status="NEW", side="BUY")

    sells = browser.get("/trading/blotter/", {"side": "SELL"}).context["page"].rows
    filled = browser.get("/trading/blotter/", {"status": "FILLED"}).context["page"].rows
    none = browser.get("/trading/blotter/", {"symbol": "ETHUSDT"}).context["page"].rows

    assert [o.client_order_id for o in sells] == ["w-1"]
    assert [o.client_order_id for o in filled] == ["f-1"]
    assert none == []


def test_the_blotter_filters_by_time_range_and_says_when_a_bound_does_not_parse(browser, desk):
    since = (desk - dt.timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%S")

    recent = browser.get("/trading/blotter/", {"since": since}).context["page"].rows
    response = browser.get("/trading/blotter/", {"since": "yesterday-ish"})

    assert [o.client_order_id for o in recent] == ["w-1"]
    assert len(response.context["page"].rows) == 2
    assert "since: not a date and time" in response.content.decode()


def test_the_blotter_pages_through_orders_with_a_cursor_newest_first(browser, desk):
    for i in range(60):
        make_order(f"p-{i:02d}", status="CANCELED", created=desk - dt.timedelta(hours=1, seconds=i))

    first = browser.get("/trading/blotter/", {"status": "CANCELED"})
    cursor = first.context["page"].next_cursor
    second = browser.get("/trading/blotter/", {"status": "CANCELED", "cursor": cursor})

    assert [o.client_order_id for o in first.context["page"].rows] == [f"p-{i:02d}" for i in range(50)]
    assert [o.client_order_id for o in second.context["page"].rows] == [f"p-{i:02d}" for i in range(50, 60)]
    assert second.context["page"].next_cursor is None
    assert "Older" in first.content.decode() and "Newest" in second.content.decode()


def test_the_fills_blotter_lists_fills_by_instrument(browser, desk):
    insert_fill(seq=30, ts=desk, exec_id="x-eth", client_order_id="e-1", side="SELL", price="3500.5",
                quantity="0.1", symbol="ETHUSDT")  # fmt: skip

    rows = browser.get("/trading/blotter/", {"kind": "fills", "symbol": "ETHUSDT"}).context["page"].rows

    assert [f.exec_id for f in rows] == ["x-eth"]


def test_an_htmx_blotter_request_gets_only_the_table(browser, desk):
    page = browser.get("/trading/blotter/", {"side": "BUY"}, HTTP_HX_REQUEST="true").content.decode()

    assert page.lstrip().startswith('<div id="blotter-table" class="card">')
    assert "<html" not in page


def test_the_csv_download_streams_every_matching_row_and_is_audited(browser, desk, trader):
    for i in range(2500):  # more than one chunk of the keyset download
        make_order(f"c-{i:04d}", status="CANCELED", created=desk - dt.timedelta(hours=2, milliseconds=i))

    response = browser.get("/trading/blotter.csv", {"status": "CANCELED"})
    body = async_to_sync(collect)(response).decode()
    rows = list(csv.reader(io.StringIO(body)))

    assert response.streaming
    assert response["Content-Type"] == "text/csv"
    assert rows[0][:4] == ["created_at", "updated_at", "engine_id", "client_order_id"]
    ids = [row[3] for row in rows[1:]]
    assert len(ids) == 2500 and len(set(ids)) == 2500
    assert ids[:2] == ["c-0000", "c-0001"]
    event = AuditEvent.objects.get(action=AuditAction.EXPORT_DOWNLOADED, actor=trader)
    assert event.target == "blotter:orders" and event.details["filters"]["status"] == "CANCELED"


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_written_as_text(browser, desk):
    order = make_order("=1+1", status="REJECTED", created=desk - dt.timedelta(hours=1))
    order.reason = '=HYPERLINK("http://example.invalid/","x")'
    order.save(update_fields=["reason"])

    response = browser.get("/trading/blotter.csv", {"status": "REJECTED"})
    rows = list(csv.reader(io.StringIO(async_to_sync(collect)(response).decode())))

    header, row = rows[0], rows[1]
    assert row[header.index("client_order_id")] == "'=1+1"
    assert row[header.index("reason")] == '\'=HYPERLINK("http://example.invalid/","x")'
    assert Decimal(row[header.index("price")]) == Decimal("64999.9")  # a number stays a number


def test_the_order_ticket_offers_the_configured_strategies_and_every_instrument(browser, desk):
    form = browser.get("/trading/ticket/").context["ticket"]

    assert [c[0] for c in form.fields["strategy_id"].choices] == ["manual", "as-btc"]
    assert "BTCUSDT" in [c[0] for c in form.fields["symbol"].choices]


def test_an_order_off_the_tick_grid_is_refused_on_the_form_and_never_sent(browser, desk, trader):
    response = browser.post(
        "/trading/ticket/",
        {"strategy_id": "manual", "symbol": "BTCUSDT", "side": "BUY", "order_type": "LIMIT",
         "time_in_force": "GTC", "quantity": "0.002", "price": "65000.05"},
        HTTP_HX_REQUEST="true",
    )  # fmt: skip

    assert response.status_code == 422
    assert response.context["ticket"].errors.as_data()["price"][0].code == "PRICE_OFF_TICK"
    assert "not a multiple of the tick size" in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditAction.ORDER_SUBMITTED).exists()


def test_cancel_all_needs_the_scope_name_typed_twice(browser, desk):
    response = browser.post(
        "/trading/orders/cancel-all/",
        {"scope_kind": "INSTRUMENT", "scope_name": "BTCUSDT", "confirm": "ETHUSDT", "reason": "flatten"},
        HTTP_HX_REQUEST="true",
    )

    assert response.status_code == 422
    assert response.context["cancel_all"].errors.as_data()["confirm"][0].code == "CONFIRMATION_MISMATCH"
    assert not AuditEvent.objects.filter(action=AuditAction.CANCEL_ALL).exists()


def params_post(**changes) -> dict:
    return {"p_gamma": "0.06", "shown": ["gamma"], "base_version": "2", "reason": "tune", **changes}


def test_a_parameter_change_without_a_version_is_refused_once_the_console_knows_the_version(browser, desk):
    response = browser.post("/trading/strategy/as-btc/params/", params_post(base_version="0"), HTTP_HX_REQUEST="true")

    assert response.status_code == 422
    errors = response.context["params_form"].non_field_errors().as_data()
    assert [e.code for e in errors] == ["STRATEGY_PARAM_VERSION_CONFLICT"]
    assert "version 2 is in force" in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditAction.STRATEGY_PARAMS_CHANGED).exists()  # never sent


def test_before_the_console_knows_a_version_a_change_may_go_without_one(desk):
    from trading.forms import StrategyParamsForm

    data = QueryDict(urlencode(params_post(base_version="0"), doseq=True))

    assert StrategyParamsForm(data, params={"gamma": "0.05"}, known_version=0).is_valid()
    assert not StrategyParamsForm(data, params={"gamma": "0.05"}, known_version=2).is_valid()


@pytest.mark.parametrize(
    ("posted", "reason"),
    [
        ({"version": "1", "base_version": "1", "reason": "undo"}, "made from version 1, but 2 is in force"),
        ({"version": "1", "base_version": "0", "reason": "undo"}, "no version given"),
        ({"version": "1", "reason": "undo"}, "base_version missing"),
    ],
)
def test_a_rollback_not_made_from_the_version_in_force_is_refused_and_never_sent(browser, desk, posted, reason):
    response = browser.post("/trading/strategy/as-btc/rollback/", posted, HTTP_HX_REQUEST="true")

    assert response.status_code == 422, reason
    assert not response.context["rollback_form"].is_valid()
    assert not AuditEvent.objects.filter(action=AuditAction.STRATEGY_PARAMS_ROLLED_BACK).exists()


def test_the_rollback_forms_carry_the_version_the_page_shows(browser, desk):
    page = browser.get("/trading/strategy/as-btc/").content.decode()

    assert '<input type="hidden" name="base_version" value="2">' in page


def test_a_parameter_the_operator_was_not_shown_is_left_as_it_is(desk):
    from trading.forms import StrategyParamsForm

    data = {"p_gamma": "0.06", "shown": ["gamma"], "base_version": "2", "reason": "r"}
    form = StrategyParamsForm(QueryDict(urlencode(data, doseq=True)), params={"gamma": "0.05", "order_size": 2})

    assert form.is_valid(), form.errors
    assert form.changes() == {"gamma": Decimal("0.06")}
    assert form["p_order_size"].value() == "2"  # shown again with its current value, not empty


def test_a_shown_parameter_left_empty_is_refused_on_its_field(desk):
    from trading.forms import StrategyParamsForm

    data = {"p_gamma": "", "shown": ["gamma"], "base_version": "2", "reason": "r"}
    form = StrategyParamsForm(QueryDict(urlencode(data, doseq=True)), params={"gamma": "0.05"})

    assert not form.is_valid()
    assert form.errors.as_data()["p_gamma"][0].code == "required"


def test_a_params_change_that_changes_nothing_is_refused_before_the_engine(browser, desk):
    response = browser.post(
        "/trading/strategy/as-btc/params/",
        {"p_gamma": "0.05", "p_order_size": "2", "p_max_inventory": "20", "p_horizon_mode": "cycle",
         "base_version": "2", "reason": "no-op", "shown": ["gamma", "order_size", "max_inventory", "horizon_mode"]},
    )  # fmt: skip

    assert response.status_code == 422
    assert "no parameter changed" in response.content.decode()
    assert not AuditEvent.objects.filter(action=AuditAction.STRATEGY_PARAMS_CHANGED).exists()


def test_the_overview_lists_recent_alerts_meant_for_the_traders_role_only(browser, desk):
    from riskdesk.services.alerts import raise_alert

    raise_alert(kind="limit_breach", severity="critical", title="BTC position near limit", audience=("trader",))
    raise_alert(kind="clock_offset", severity="warning", title="Clock offset 40 ms", audience=("risk_officer",))

    page = browser.get("/trading/").content.decode()

    assert "BTC position near limit" in page
    assert "Clock offset 40 ms" not in page
