"""On a day of data (1 M ticks, 100 K orders with their events and fills) every selector reads through an index.

The plans are checked with EXPLAIN, never timed: the SQL each selector actually sends is captured and explained,
and no plan may sequentially scan a big table or one of its partitions that holds rows. An empty partition (the
DEFAULT one, which only catches rows when no day partition exists yet, and the days created ahead) may be read
sequentially: the planner rightly reads an empty table without an index.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from tests.trading.dataset import ENGINE, STRATEGIES, SYMBOLS, load_day
from trading import selectors, timeseries
from trading.selectors import BlotterFilter

BIG_TABLES = (
    "trading_tick",
    "trading_trade",
    "trading_order",
    "trading_orderevent",
    "trading_fill",
    "trading_pnlsnapshot",
    "trading_bar_1s",
    "trading_bar_1m",
)


def is_empty(relation: str) -> bool:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT NOT EXISTS (SELECT 1 FROM {relation})")
        return cursor.fetchone()[0]


def sequential_scans(plan: dict) -> list[str]:
    found = []
    if plan.get("Node Type") == "Seq Scan":
        relation = plan["Relation Name"]
        big = any(relation == table or relation.startswith(f"{table}_") for table in BIG_TABLES)
        if big and not is_empty(relation):
            found.append(relation)
    for child in plan.get("Plans", []):
        found += sequential_scans(child)
    return found


def plans_of(call) -> list[dict]:
    with CaptureQueriesContext(connection) as captured:
        call()
    plans = []
    with connection.cursor() as cursor:
        for query in captured.captured_queries:
            cursor.execute(f"EXPLAIN (FORMAT JSON) {query['sql']}")
            raw = cursor.fetchone()[0]
            plans.append((json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"])
    return plans


@pytest.fixture
def day(db):
    end = dt.datetime.now(dt.UTC).replace(microsecond=0)
    with connection.cursor() as cursor:
        # ensure_partitions covers today onwards; the day of data starts yesterday.
        timeseries.ensure_partitions(start=(end - dt.timedelta(days=1)).date())
        loaded = load_day(cursor.cursor, end=end)
        cursor.execute("ANALYZE")
    timeseries.refresh_bars()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE trading_bar_1s; ANALYZE trading_bar_1m")
    return loaded


@pytest.mark.slow
def test_every_selector_reads_a_day_of_data_through_indexes(day):
    hour_ago = day.end - dt.timedelta(hours=1)
    page = selectors.order_blotter(limit=100)
    fill_page = selectors.fill_blotter(limit=100)
    calls = {
        "current positions": lambda: list(selectors.current_positions(strategy_id=STRATEGIES[0])),
        "pnl series (firm, last hour, 1 min)": lambda: selectors.pnl_series(
            scope_kind="FIRM", start=hour_ago, end=day.end
        ),
        "pnl series (strategy, day, 5 min)": lambda: selectors.pnl_series(
            scope_kind="STRATEGY",
            scope_name=STRATEGIES[1],
            start=day.start,
            end=day.end,
            bucket=dt.timedelta(minutes=5),
        ),
        "orders, newest first": lambda: selectors.order_blotter(limit=100),
        "orders, next page by cursor": lambda: selectors.order_blotter(limit=100, cursor=page.next_cursor),
        "orders, page 50 by offset": lambda: selectors.order_blotter(limit=100, offset=5000),
        "orders by symbol and side": lambda: selectors.order_blotter(
            filters=BlotterFilter(symbol=SYMBOLS[2], side="SELL")
        ),
        "orders by strategy in a time range": lambda: selectors.order_blotter(
            filters=BlotterFilter(strategy_id=STRATEGIES[3], start=day.start, end=hour_ago)
        ),
        "orders by status": lambda: selectors.order_blotter(filters=BlotterFilter(statuses=("CANCELED",))),
        "fills, newest first": lambda: selectors.fill_blotter(limit=100),
        "fills, next page by cursor": lambda: selectors.fill_blotter(limit=100, cursor=fill_page.next_cursor),
        "fills by symbol in a time range": lambda: selectors.fill_blotter(
            filters=BlotterFilter(symbol=SYMBOLS[0], start=hour_ago, end=day.end)
        ),
        "fills by strategy and side": lambda: selectors.fill_blotter(
            filters=BlotterFilter(strategy_id=STRATEGIES[1], side="BUY")
        ),
        "order events, newest first": lambda: selectors.order_event_blotter(limit=100),
        "order events by symbol": lambda: selectors.order_event_blotter(filters=BlotterFilter(symbol=SYMBOLS[4])),
        "one order's history": lambda: list(selectors.order_history(engine_id=ENGINE, client_order_id="o777")),
        "latest fills": lambda: selectors.latest_fills(limit=50),
        "working orders": selectors.working_orders,
        "working orders of a strategy": lambda: selectors.working_orders(strategy_id=STRATEGIES[0]),
        "1 s bars, last 10 minutes": lambda: list(
            selectors.bars(symbol=SYMBOLS[0], start=day.end - dt.timedelta(minutes=10), end=day.end, resolution="1s")
        ),
        "1 m bars, the day": lambda: list(
            selectors.bars(symbol=SYMBOLS[1], start=day.start, end=day.end, resolution="1m")
        ),
    }

    offenders = {}
    for name, call in calls.items():
        for plan in plans_of(call):
            if scans := sequential_scans(plan):
                offenders[name] = scans

    assert (day.ticks, day.orders) == (1_000_000, 100_000)
    assert len(selectors.working_orders()) == 40
    assert offenders == {}
