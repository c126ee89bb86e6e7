"""Alpha signals on constructed books: weighted mid (micro-price), book imbalance, trade-flow imbalance."""

import pytest

from engine.book import L2Book
from engine.enums import Side
from engine.strategies.signals import (
    TradeFlowImbalance,
    book_imbalance,
    market_top,
    microprice_offset,
    own_levels,
    weighted_mid,
)

SECOND = 1_000_000_000


def book(bids, asks):
    b = L2Book("XYZ")
    for price, size in bids:
        b.apply(Side.BUY, price, size)
    for price, size in asks:
        b.apply(Side.SELL, price, size)
    return b


@pytest.mark.parametrize(
    ("bids", "asks", "expected"),
    [
        # (100 * 10 + 102 * 10) / 20 = 101: equal queues give the mid.
        ([(100, 10)], [(102, 10)], 101.0),
        # (100 * 10 + 102 * 30) / 40 = 101.5: a big bid queue pulls toward the ask.
        ([(100, 30)], [(102, 10)], 101.5),
        # (100 * 30 + 102 * 10) / 40 = 100.5
        ([(100, 10)], [(102, 30)], 100.5),
        # one-tick spread, 3:1 -> (100 * 1 + 101 * 3) / 4 = 100.75
        ([(100, 3), (99, 50)], [(101, 1), (102, 50)], 100.75),
    ],
)
def test_weighted_mid_leans_toward_the_thinner_side(bids, asks, expected):
    b = book(bids, asks)

    price = weighted_mid(b)
    offset = microprice_offset(b)

    assert price == expected
    assert offset == pytest.approx(expected - (b.best_bid + b.best_ask) / 2)


def test_weighted_mid_is_undefined_on_a_one_sided_book():
    b = book([(100, 5)], [])

    assert weighted_mid(b) is None
    assert microprice_offset(b) == 0.0


@pytest.mark.parametrize(
    ("levels", "expected"),
    [
        (1, (30 - 10) / 40),  # top only: 30 vs 10
        (2, (30 + 5 - 10 - 40) / 85),  # 35 vs 50: deeper asks flip the sign
        (3, (30 + 5 + 5 - 10 - 40) / 90),  # asks have only two levels
        (10, (30 + 5 + 5 - 10 - 40) / 90),
    ],
)
def test_book_imbalance_over_n_levels(levels, expected):
    b = book([(100, 30), (99, 5), (98, 5)], [(101, 10), (102, 40)])

    value = book_imbalance(b, levels)

    assert value == pytest.approx(expected)


def test_book_imbalance_is_plus_one_with_only_bids_and_zero_for_an_empty_book():
    assert book_imbalance(book([(100, 5)], []), 3) == 1.0
    assert book_imbalance(book([], [(100, 5)]), 1) == -1.0
    assert book_imbalance(book([], []), 5) == 0.0


def test_trade_flow_imbalance_counts_only_the_window():
    flow = TradeFlowImbalance(window_ns=10 * SECOND)

    flow.on_trade(6, Side.BUY, 1 * SECOND)
    flow.on_trade(2, Side.SELL, 5 * SECOND)
    both = flow.value(10 * SECOND)  # (6 - 2) / 8
    only_sell = flow.value(11 * SECOND)  # the buy at 1 s left the window (1 <= 11 - 10)
    nothing = flow.value(20 * SECOND)

    assert both == 0.5
    assert only_sell == -1.0
    assert nothing == 0.0


def test_trade_flow_imbalance_stays_in_bounds_under_many_trades():
    flow = TradeFlowImbalance(window_ns=SECOND)
    values = []

    for i in range(1000):
        flow.on_trade(1 + i % 7, Side.BUY if i % 3 else Side.SELL, i * SECOND // 100)
        values.append(flow.value(i * SECOND // 100))

    assert all(-1.0 <= v <= 1.0 for v in values)
    assert values[-1] > 0  # two buys for every sell


class Own:
    """An order-like object: what `own_levels` reads from `engine.oms.Order`."""

    def __init__(self, side, price, leaves, *, cum=0, pending_price=0, pending_quantity=0):
        self.side = side
        self.price = price
        self.leaves_quantity = leaves
        self.cum_quantity = cum
        self.pending_price = pending_price
        self.pending_quantity = pending_quantity


def test_own_levels_count_an_order_being_replaced_at_both_prices():
    own = [
        Own(Side.BUY, 99, 3),
        Own(Side.BUY, 99, 2),
        Own(Side.SELL, 101, 4, cum=1, pending_price=103, pending_quantity=6),  # 6 total - 1 filled = 5 after
        Own(Side.SELL, 104, 0),  # nothing left to rest
    ]

    bids, asks = own_levels(own)

    assert bids == {99: 5}
    assert asks == {101: 4, 103: 5}


@pytest.mark.parametrize(
    ("bids", "asks", "own", "expected"),
    [
        ([(100, 5)], [(101, 5)], [], (100, 5, 101, 5)),
        # Ours is part of the best level: the price stays, the size shrinks.
        ([(100, 5)], [(101, 5)], [Own(Side.BUY, 100, 2)], (100, 3, 101, 5)),
        # Ours is the whole best level: the next price with someone else's size (dense book: found by probing).
        ([(100, 2), (99, 7)], [(101, 3), (102, 4)], [Own(Side.BUY, 100, 2), Own(Side.SELL, 101, 3)], (99, 7, 102, 4)),
        # Sparse book: the next level is 50 ticks away, past the probes.
        ([(100, 2), (50, 7)], [(101, 3)], [Own(Side.BUY, 100, 2)], (50, 7, 101, 3)),
        # Nothing but us on a side.
        ([(100, 2)], [(101, 3)], [Own(Side.BUY, 100, 2)], (None, 0, 101, 3)),
        # Two levels of ours (an order and a replace in flight): both skipped.
        (
            [(100, 2), (99, 2), (98, 9)],
            [(101, 3)],
            [Own(Side.BUY, 100, 2, pending_price=99, pending_quantity=2)],
            (98, 9, 101, 3),
        ),
    ],
)
def test_market_top_is_the_book_without_our_own_orders(bids, asks, own, expected):
    b = book(bids, asks)

    top = market_top(b, *own_levels(own))

    assert top == expected


def test_book_imbalance_without_our_own_orders_skips_levels_that_were_only_ours():
    b = book([(100, 30), (99, 5), (98, 5)], [(101, 10), (102, 40)])
    own = own_levels([Own(Side.BUY, 100, 30), Own(Side.SELL, 101, 4)])

    value = book_imbalance(b, 2, own)

    # bids without ours: 99 x 5, 98 x 5 -> 10; asks: 101 x 6, 102 x 40 -> 46
    assert value == pytest.approx((10 - 46) / 56)
