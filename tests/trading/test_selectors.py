"""What the read-side selectors return: filters, pagination, P&L buckets, working orders, positions."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection

from trading import selectors
from trading.models import Order, PnlSnapshot, Position
from trading.selectors import BlotterFilter, SelectorError

pytestmark = pytest.mark.django_db

T0 = dt.datetime.now(dt.UTC).replace(microsecond=0) - dt.timedelta(hours=2)


def make_order(n: int, *, at: dt.datetime, symbol="BTCUSDT", strategy="as-btc", side="BUY", status="FILLED") -> Order:
    return Order.objects.create(
        engine_id="engine-1",
        client_order_id=f"o{n}",
        strategy_id=strategy,
        symbol=symbol,
        side=side,
        order_type="LIMIT",
        time_in_force="GTC",
        price=Decimal("100.5"),
        quantity=Decimal("1"),
        status=status,
        created_at=at,
        updated_at=at,
        created_ts_ns=0,
        updated_ts_ns=0,
        last_seq=n,
    )


def make_fill(n: int, *, at: dt.datetime, symbol="BTCUSDT", strategy="as-btc", side="BUY") -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO trading_fill (engine_id, seq, ts, ts_ns, exec_id, client_order_id, strategy_id, symbol,"
            " side, price, quantity) VALUES ('engine-1', %s, %s, 0, %s, %s, %s, %s, %s, 100, 1)",
            [n, at, f"x{n}", f"o{n}", strategy, symbol, side],
        )


def walk(fetch, **kwargs) -> list:
    rows, cursor = [], None
    while True:
        page = fetch(cursor=cursor, **kwargs)
        rows += page.rows
        if page.next_cursor is None:
            return rows
        cursor = page.next_cursor


def test_keyset_pages_visit_every_order_once_newest_first_even_when_times_tie():
    # Three orders per second: pages must break ties on id, not skip or repeat them.
    orders = [make_order(n, at=T0 + dt.timedelta(seconds=n // 3)) for n in range(25)]

    seen = walk(selectors.order_blotter, limit=4)

    assert [o.id for o in seen] == [o.id for o in sorted(orders, key=lambda o: (o.created_at, o.id), reverse=True)]


def test_offset_pages_give_the_same_order_as_keyset_pages():
    for n in range(10):
        make_order(n, at=T0 + dt.timedelta(seconds=n))

    first = selectors.order_blotter(limit=4, offset=0)
    third = selectors.order_blotter(limit=4, offset=8)

    assert [o.client_order_id for o in first.rows] == ["o9", "o8", "o7", "o6"]
    assert [o.client_order_id for o in third.rows] == ["o1", "o0"]
    assert third.next_cursor is None


def test_order_filters_combine_symbol_strategy_side_status_and_a_half_open_time_range():
    make_order(1, at=T0, symbol="ETHUSDT", side="SELL", status="CANCELED")
    make_order(2, at=T0 + dt.timedelta(minutes=1), symbol="ETHUSDT", side="SELL", status="CANCELED")
    make_order(3, at=T0 + dt.timedelta(minutes=2), symbol="ETHUSDT", side="SELL", status="CANCELED")
    make_order(4, at=T0 + dt.timedelta(minutes=1), symbol="ETHUSDT", side="BUY", status="CANCELED")
    make_order(5, at=T0 + dt.timedelta(minutes=1), symbol="BTCUSDT", side="SELL", status="CANCELED")
    make_order(6, at=T0 + dt.timedelta(minutes=1), symbol="ETHUSDT", side="SELL", status="FILLED")
    make_order(7, at=T0 + dt.timedelta(minutes=1), symbol="ETHUSDT", side="SELL", status="CANCELED", strategy="x")

    page = selectors.order_blotter(
        filters=BlotterFilter(
            symbol="ETHUSDT",
            strategy_id="as-btc",
            side="SELL",
            statuses=("CANCELED",),
            start=T0 + dt.timedelta(seconds=30),
            end=T0 + dt.timedelta(minutes=2),
        )
    )

    assert [o.client_order_id for o in page.rows] == ["o2"]


def test_fill_pages_and_filters_and_latest_fills_newest_first():
    for n in range(7):
        make_fill(n, at=T0 + dt.timedelta(seconds=n), side="BUY" if n % 2 else "SELL")

    buys = walk(selectors.fill_blotter, limit=2, filters=BlotterFilter(side="BUY"))
    latest = selectors.latest_fills(limit=3)

    assert [f.exec_id for f in buys] == ["x5", "x3", "x1"]
    assert [f.exec_id for f in latest] == ["x6", "x5", "x4"]


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda: BlotterFilter(side="LONG"), "BAD_SIDE"),
        (lambda: BlotterFilter(start=T0, end=T0), "BAD_RANGE"),
        (lambda: BlotterFilter(statuses=("FILLED", "DONE")), "BAD_STATUS"),
        (lambda: BlotterFilter(start=T0.replace(tzinfo=None), end=T0.replace(tzinfo=None)), "NAIVE_TIME"),
        (lambda: selectors.order_blotter(cursor="not-a-cursor"), "BAD_CURSOR"),
        (lambda: selectors.order_blotter(cursor="x", offset=0), "BAD_PAGINATION"),
        (lambda: selectors.order_blotter(offset=-1), "BAD_PAGINATION"),
        (lambda: selectors.order_blotter(limit=0), "BAD_LIMIT"),
        (lambda: selectors.order_blotter(limit=selectors.MAX_PAGE + 1), "BAD_LIMIT"),
        (lambda: selectors.fill_blotter(filters=BlotterFilter(statuses=("FILLED",))), "BAD_FILTER"),
        (lambda: selectors.pnl_series(scope_kind="DESK", start=T0, end=T0 + dt.timedelta(1)), "BAD_SCOPE"),
        (
            lambda: selectors.pnl_series(scope_kind="FIRM", start=T0, end=T0 + dt.timedelta(1), bucket=dt.timedelta(0)),
            "BAD_BUCKET",
        ),
        (
            lambda: selectors.pnl_series(
                scope_kind="FIRM", start=T0, end=T0 + dt.timedelta(days=30), bucket=dt.timedelta(seconds=1)
            ),
            "BAD_BUCKET",
        ),
        (
            lambda: selectors.bars(symbol="BTCUSDT", start=T0, end=T0 + dt.timedelta(1), resolution="5s"),
            "BAD_RESOLUTION",
        ),
    ],
)
def test_bad_selector_input_is_refused_with_a_reason_code(call, code):
    with pytest.raises(SelectorError) as error:
        call()

    assert error.value.code == code


def test_pnl_series_takes_the_last_value_in_each_bucket_of_one_scope():
    base = T0.replace(second=0)
    values = [(5, "1"), (50, "2"), (65, "3"), (130, "4")]
    for seq, (offset, realized) in enumerate(values, start=1):
        PnlSnapshot.objects.create(
            engine_id="engine-1",
            seq=seq,
            ts=base + dt.timedelta(seconds=offset),
            scope_kind="STRATEGY",
            scope_name="as-btc",
            realized_pnl=Decimal(realized),
            unrealized_pnl=Decimal("0.5"),
            fees=Decimal("0.25"),
        )
    PnlSnapshot.objects.create(
        engine_id="engine-1", seq=99, ts=base + dt.timedelta(seconds=10), scope_kind="FIRM", realized_pnl=9
    )

    series = selectors.pnl_series(
        scope_kind="STRATEGY", scope_name="as-btc", start=base, end=base + dt.timedelta(minutes=3)
    )

    assert [(p.bucket - base, p.realized) for p in series] == [
        (dt.timedelta(0), Decimal("2")),
        (dt.timedelta(minutes=1), Decimal("3")),
        (dt.timedelta(minutes=2), Decimal("4")),
    ]
    assert series[0].total == Decimal("2.25")


def test_working_orders_are_exactly_the_orders_that_can_still_trade():
    statuses = ["PENDING_NEW", "NEW", "PARTIALLY_FILLED", "PENDING_CANCEL", "PENDING_REPLACE"]
    for n, status in enumerate([*statuses, "FILLED", "CANCELED", "REJECTED", "EXPIRED", "DENIED"]):
        make_order(n, at=T0, status=status)

    working = selectors.working_orders()

    assert sorted(o.status for o in working) == sorted(statuses)


def test_current_positions_leave_out_flat_ones_unless_asked():
    for strategy, quantity in (("a", "1.5"), ("b", "0"), ("c", "-2")):
        Position.objects.create(engine_id="engine-1", strategy_id=strategy, symbol="BTCUSDT", quantity=quantity)

    open_positions = selectors.current_positions()
    every = selectors.current_positions(include_flat=True)

    assert [(p.strategy_id, p.quantity) for p in open_positions] == [("a", Decimal("1.5")), ("c", Decimal("-2"))]
    assert every.count() == 3
