"""What the trader's console reads off the market and the portfolio: public trades, throttled book depth, fees."""

from __future__ import annotations

from decimal import Decimal

import pytest
from console_harness import MS, START, SYMBOL, Desk

from engine.enums import Side
from engine.protocol import (
    MAX_DEPTH_LEVELS,
    BookDepth,
    MarketTrade,
    OrderFilled,
    PnlUpdated,
    PositionChanged,
    PriceLevel,
    RequestStateSnapshot,
    Scope,
    TradePrinted,
)


def test_a_public_trade_at_the_venue_is_published_as_a_market_trade_in_ticks_and_lots() -> None:
    desk = Desk()
    desk.market()
    desk.take()

    desk.other(Side.BUY, 10_010, 2, "taker-1", account="TAKER")

    [trade] = desk.events(MarketTrade)
    assert (trade.symbol, trade.price, trade.quantity, trade.aggressor) == (SYMBOL, 10_010, 2, Side.BUY)
    assert trade.trade_id > 0


def test_market_trades_can_be_switched_off_and_still_move_the_last_trade_price() -> None:
    desk = Desk(publish_market_trades=False)
    desk.market()

    desk.other(Side.SELL, 9_990, 1, "taker-1", account="TAKER")

    assert desk.events(MarketTrade) == []
    assert desk.engine._books[SYMBOL].last_trade == 9_990


def test_trades_replayed_from_a_trusted_file_are_published_too() -> None:
    desk = Desk(market_data_trusted=True)
    trade = TradePrinted(symbol=SYMBOL, seq=1, ts=5, trade_id=77, price=10_000, quantity=3, aggressor=Side.SELL)

    desk.engine.handle_market_data(trade)

    assert desk.events(MarketTrade) == [
        MarketTrade(symbol=SYMBOL, price=10_000, quantity=3, aggressor=Side.SELL, venue_ts=5, trade_id=77)
    ]


def test_book_depth_goes_out_on_the_first_change_then_at_most_once_per_interval_with_the_latest_book() -> None:
    desk = Desk(depth_interval_ns=100 * MS)

    desk.other(Side.BUY, 9_990, 5, "lp-b")  # t = START: first change, sent at once
    first = desk.events(BookDepth)
    desk.take()
    desk.other(Side.SELL, 10_010, 5, "lp-a")  # inside the interval: held back
    held = desk.events(BookDepth)
    desk.timer(START + 50 * MS)
    early = desk.events(BookDepth)
    desk.timer(START + 100 * MS)
    due = desk.events(BookDepth)
    desk.take()
    desk.timer(START + 300 * MS)
    unchanged = desk.events(BookDepth)

    assert first == [
        BookDepth(symbol=SYMBOL, bids=(PriceLevel(price=9_990, size=5),), asks=(), venue_ts=first[0].venue_ts)
    ]
    assert (held, early) == ([], [])
    assert [(d.bids, d.asks) for d in due] == [
        ((PriceLevel(price=9_990, size=5),), (PriceLevel(price=10_010, size=5),))
    ]
    assert unchanged == []


def test_book_depth_carries_at_most_ten_levels_per_side_best_first() -> None:
    desk = Desk(depth_interval_ns=1)
    for i in range(12):
        desk.other(Side.BUY, 9_990 - i, 1 + i, f"lp-b{i}")
        desk.clock.advance(10)

    last = desk.events(BookDepth)[-1]

    assert len(last.bids) == MAX_DEPTH_LEVELS
    assert [level.price for level in last.bids] == [9_990 - i for i in range(MAX_DEPTH_LEVELS)]


def test_a_zero_depth_interval_publishes_no_depth_at_all() -> None:
    desk = Desk(depth_interval_ns=0)

    desk.market()
    desk.timer(START + 10_000 * MS)

    assert desk.events(BookDepth) == []


def test_a_fill_reports_the_cumulative_fees_on_the_position_and_the_pnl_of_every_scope() -> None:
    desk = Desk()
    desk.market()

    desk.submit("m1", Side.BUY, "100.10", "0.002")  # crosses the 100.10 ask: taker at 5 bps
    desk.pump()
    desk.submit("m2", Side.BUY, "100.10", "0.001")
    desk.pump()
    desk.timer(START + 2_000 * MS)

    fills = desk.events(OrderFilled)
    positions = desk.events(PositionChanged)
    pnl = {(p.scope.kind, p.scope.name): p.fees for p in desk.events(PnlUpdated)}
    expected = Decimal("100.10") * Decimal("0.003") * Decimal("0.0005")
    assert sum(f.commission for f in fills) == expected
    assert [p.fees for p in positions] == [fills[0].commission, expected]
    assert pnl[(Scope.firm().kind, "")] == expected
    assert pnl[(Scope.strategy("as1").kind, "as1")] == Decimal(0)


def test_the_state_snapshot_gives_each_position_its_fees() -> None:
    desk = Desk()
    desk.market()
    desk.submit("m1", Side.SELL, "99.90", "0.001")
    desk.pump()

    snapshot = desk.cmd(RequestStateSnapshot)

    [position] = snapshot.positions
    assert position.fees == Decimal("99.90") * Decimal("0.001") * Decimal("0.0005")
    assert position.fees == desk.engine.portfolio.fees(strategy_id="manual", symbol=SYMBOL)


@pytest.mark.parametrize("interval_ms", [1, 100])
def test_depth_never_falls_behind_the_book_by_more_than_one_interval(interval_ms: int) -> None:
    desk = Desk(depth_interval_ns=interval_ms * MS)
    for i in range(30):
        desk.clock.advance(7 * MS)
        desk.other(Side.BUY, 9_900 + i, 1, f"lp-{i}")
    desk.timer(desk.clock.now() + interval_ms * MS)

    last = desk.events(BookDepth)[-1]
    bids, _ = desk.engine.book(SYMBOL).depth(MAX_DEPTH_LEVELS)

    assert [(level.price, level.size) for level in last.bids] == list(bids)
