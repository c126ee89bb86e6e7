"""L3 (order by order) books: the same suite runs against the fast book and the reference."""

from __future__ import annotations

import pytest

from engine.book import BookError, L3Book, ReferenceL3Book
from engine.enums import Side
from engine.instruments import InstrumentRegistry
from engine.marketdata.databento import MboReplayStats, MboSequenceCheck, apply_mbo_event, iter_mbo_file
from engine.marketdata.paths import shared_data_dir

BUY, SELL = Side.BUY, Side.SELL

DATABENTO_MBO = (
    shared_data_dir()
    / "nautilus_trader/tests/test_data/databento/order_book_deltas_catalog/databento"
    / "orderbooks_mbo_2024-05-08T00-00-00_2024-05-08T00-00-02.dbn.zst"
)


@pytest.fixture(params=[L3Book, ReferenceL3Book], ids=["fast", "reference"])
def book_cls(request):
    return request.param


@pytest.fixture
def book(book_cls):
    return book_cls("ESM4")


def state(book) -> tuple:
    """Everything observable about a book, to compare books or check that a refused operation changed nothing."""
    bids, asks = book.depth()
    queues = tuple(
        (side, price, tuple((oid, book.order(oid), book.queue_position(oid)) for oid in book.orders_at(side, price)))
        for side, levels in ((BUY, bids), (SELL, asks))
        for price, _ in levels
    )
    return (
        book.best_bid,
        book.best_bid_size,
        book.best_ask,
        book.best_ask_size,
        bids,
        asks,
        queues,
        len(book),
        book.level_count(BUY),
        book.level_count(SELL),
        book.is_crossed(),
        book.is_locked(),
    )


def resting(book) -> None:
    """Bids: 100 <- [1:5, 2:3, 3:2], 99 <- [4:7]. Asks: 101 <- [5:4, 6:1], 103 <- [7:9]."""
    book.add(1, BUY, 100, 5)
    book.add(2, BUY, 100, 3)
    book.add(3, BUY, 100, 2)
    book.add(4, BUY, 99, 7)
    book.add(5, SELL, 101, 4)
    book.add(6, SELL, 101, 1)
    book.add(7, SELL, 103, 9)


def test_new_book_is_empty(book):
    assert (book.best_bid, book.best_ask, book.best_bid_size, book.best_ask_size) == (None, None, 0, 0)
    assert book.depth() == ([], [])
    assert len(book) == 0
    assert book.orders_at(BUY, 100) == []
    assert book.symbol == "ESM4"


def test_levels_aggregate_their_orders(book):
    resting(book)

    assert book.depth() == ([(100, 10), (99, 7)], [(101, 5), (103, 9)])
    assert (book.best_bid, book.best_bid_size, book.best_ask, book.best_ask_size) == (100, 10, 101, 5)
    assert book.size_at(BUY, 100) == 10
    assert book.size_at(SELL, 102) == 0
    assert (book.level_count(BUY), book.level_count(SELL)) == (2, 2)
    assert len(book) == 7


def test_orders_queue_in_arrival_order(book):
    resting(book)

    assert book.orders_at(BUY, 100) == [1, 2, 3]
    assert book.orders_at(SELL, 101) == [5, 6]
    assert book.order(2) == (BUY, 100, 3)


def test_queue_position_counts_orders_and_size_ahead(book):
    resting(book)

    assert book.queue_position(1) == (0, 0)
    assert book.queue_position(2) == (1, 5)
    assert book.queue_position(3) == (2, 8)
    assert book.queue_position(4) == (0, 0)


def test_cancel_removes_the_order_and_those_behind_move_up(book):
    resting(book)

    book.cancel(1)

    assert book.orders_at(BUY, 100) == [2, 3]
    assert book.queue_position(3) == (1, 3)
    assert book.best_bid_size == 5
    with pytest.raises(BookError):
        book.order(1)


def test_partial_cancel_reduces_the_order_and_keeps_its_place(book):
    resting(book)

    book.cancel(1, 2)

    assert book.order(1) == (BUY, 100, 3)
    assert book.orders_at(BUY, 100) == [1, 2, 3]
    assert book.queue_position(2) == (1, 3)
    assert book.best_bid_size == 8


def test_cancel_of_the_whole_remaining_size_or_more_removes_the_order(book):
    resting(book)

    book.cancel(5, 4)
    book.cancel(6, 50)

    assert book.orders_at(SELL, 101) == []
    assert (book.best_ask, book.best_ask_size) == (103, 9)


def test_cancelling_the_last_order_at_the_best_falls_back_to_the_next_level(book):
    resting(book)

    for order_id in (1, 2, 3):
        book.cancel(order_id)

    assert (book.best_bid, book.best_bid_size) == (99, 7)
    assert book.level_count(BUY) == 1
    assert book.size_at(BUY, 100) == 0


def test_modify_size_down_keeps_priority(book):
    resting(book)

    book.modify(1, 100, 1)

    assert book.orders_at(BUY, 100) == [1, 2, 3]
    assert book.order(1) == (BUY, 100, 1)
    assert book.best_bid_size == 6


def test_modify_to_the_same_size_and_price_keeps_priority(book):
    resting(book)

    book.modify(1, 100, 5)

    assert book.orders_at(BUY, 100) == [1, 2, 3]
    assert book.best_bid_size == 10


def test_modify_size_up_loses_priority(book):
    resting(book)

    book.modify(1, 100, 6)

    assert book.orders_at(BUY, 100) == [2, 3, 1]
    assert book.queue_position(1) == (2, 5)
    assert book.best_bid_size == 11


def test_modify_price_moves_the_order_to_the_back_of_the_new_level(book):
    resting(book)

    book.modify(1, 99, 2)

    assert book.orders_at(BUY, 99) == [4, 1]
    assert book.orders_at(BUY, 100) == [2, 3]
    assert book.order(1) == (BUY, 99, 2)
    assert book.depth() == ([(100, 5), (99, 9)], [(101, 5), (103, 9)])


def test_modify_price_to_a_new_level_through_the_spread_makes_it_the_best(book):
    resting(book)

    book.modify(7, 100, 9)

    assert (book.best_ask, book.best_ask_size) == (100, 9)
    assert book.level_count(SELL) == 2
    assert book.is_locked()


def test_modify_the_only_order_at_the_best_to_a_worse_price_moves_the_best(book):
    resting(book)

    book.modify(5, 104, 4)
    book.modify(6, 104, 1)

    assert (book.best_ask, book.best_ask_size) == (103, 9)
    assert book.orders_at(SELL, 104) == [5, 6]


def test_execute_partially_keeps_priority(book):
    resting(book)

    book.execute(5, 3)

    assert book.order(5) == (SELL, 101, 1)
    assert book.orders_at(SELL, 101) == [5, 6]
    assert book.best_ask_size == 2


def test_execute_of_the_whole_remaining_size_removes_the_order(book):
    resting(book)

    book.execute(5, 4)
    book.execute(6, 1)

    assert (book.best_ask, book.best_ask_size) == (103, 9)
    assert len(book) == 5


def test_an_id_can_be_reused_after_its_order_left(book):
    resting(book)
    book.cancel(1)

    book.add(1, SELL, 102, 2)

    assert book.order(1) == (SELL, 102, 2)
    assert book.orders_at(BUY, 100) == [2, 3]


def test_a_bid_above_the_best_ask_makes_a_crossed_book(book):
    resting(book)

    book.add(8, BUY, 102, 1)

    assert book.is_crossed()
    assert (book.best_bid, book.best_bid_size) == (102, 1)


def test_clear_empties_the_book_and_it_can_be_reused(book):
    resting(book)

    book.clear()
    book.add(1, SELL, 50, 1)

    assert book.depth() == ([], [(50, 1)])
    assert len(book) == 1
    assert book.best_bid is None


def test_depth_limits_each_side_to_n_levels(book):
    resting(book)

    assert book.depth(1) == ([(100, 10)], [(101, 5)])
    assert book.depth(0) == ([], [])


def test_every_level_is_found_again_when_the_levels_above_it_empty(book):
    # Levels arrive worst-first, so none is the best when added, and the fast book's heap is rebuilt on the
    # way; executing the best order away one level at a time must visit every level in order.
    for offset in range(300):
        book.add(offset, BUY, 1000 - offset, offset + 1)
        book.add(1000 + offset, SELL, 2000 + offset, offset + 1)
    seen = []

    for offset in range(300):
        seen.append((book.best_bid, book.best_bid_size, book.best_ask, book.best_ask_size))
        book.execute(offset, offset + 1)
        book.cancel(1000 + offset)

    assert seen == [(1000 - offset, offset + 1, 2000 + offset, offset + 1) for offset in range(300)]
    assert len(book) == 0


# Each bad operation is refused with its code and leaves the book exactly as it was.
BAD_OPERATIONS = [
    ("add", (1, BUY, 100, 1), "BOOK_DUPLICATE_ORDER"),
    ("add", (5, SELL, 200, 1), "BOOK_DUPLICATE_ORDER"),
    ("add", (20, 0, 100, 1), "BOOK_BAD_SIDE"),
    ("add", (20, 2, 100, 1), "BOOK_BAD_SIDE"),
    ("add", (20, BUY, -1, 1), "BOOK_BAD_PRICE"),
    ("add", (20, BUY, -1, 0), "BOOK_BAD_PRICE"),
    ("add", (20, BUY, 100, 0), "BOOK_BAD_SIZE"),
    ("add", (20, SELL, 101, -2), "BOOK_BAD_SIZE"),
    ("add", (20, SELL, 150, 0), "BOOK_BAD_SIZE"),
    ("cancel", (20,), "BOOK_UNKNOWN_ORDER"),
    ("cancel", (20, 1), "BOOK_UNKNOWN_ORDER"),
    ("cancel", (1, 0), "BOOK_BAD_SIZE"),
    ("cancel", (1, -1), "BOOK_BAD_SIZE"),
    ("modify", (20, 100, 1), "BOOK_UNKNOWN_ORDER"),
    ("modify", (1, -1, 1), "BOOK_BAD_PRICE"),
    ("modify", (1, 100, 0), "BOOK_BAD_SIZE"),
    ("modify", (1, 98, -1), "BOOK_BAD_SIZE"),
    ("execute", (20, 1), "BOOK_UNKNOWN_ORDER"),
    ("execute", (1, 0), "BOOK_BAD_SIZE"),
    ("execute", (1, -3), "BOOK_BAD_SIZE"),
    ("execute", (1, 6), "BOOK_OVERFILL"),
    ("queue_position", (20,), "BOOK_UNKNOWN_ORDER"),
    ("order", (20,), "BOOK_UNKNOWN_ORDER"),
    ("orders_at", (0, 100), "BOOK_BAD_SIDE"),
    ("size_at", (3, 100), "BOOK_BAD_SIDE"),
    ("level_count", (0,), "BOOK_BAD_SIDE"),
    ("depth", (-1,), "BOOK_BAD_DEPTH"),
]


@pytest.mark.parametrize(("method", "args", "code"), BAD_OPERATIONS, ids=[f"{m}{a}" for m, a, _ in BAD_OPERATIONS])
def test_a_bad_operation_is_refused_with_a_code_and_changes_nothing(book, method, args, code):
    resting(book)
    before = state(book)

    with pytest.raises(BookError) as raised:
        getattr(book, method)(*args)

    assert raised.value.code == code
    assert state(book) == before


# -- the real Databento market-by-order replay (CME ESM4) ----------------------------------------


def top(book) -> tuple:
    return book.best_bid, book.best_bid_size, book.best_ask, book.best_ask_size


@pytest.mark.slow
@pytest.mark.skipif(not DATABENTO_MBO.exists(), reason=f"shared market data not found at {DATABENTO_MBO}")
def test_databento_mbo_replay_gives_the_same_book_in_the_fast_book_and_the_reference():
    instrument = InstrumentRegistry.from_toml().get("ESM4")
    fast, reference = L3Book("ESM4"), ReferenceL3Book("ESM4")
    fast_stats, reference_stats = MboReplayStats(), MboReplayStats()
    fast_sequence, reference_sequence = MboSequenceCheck(), MboSequenceCheck()

    # One reader and one set of MBO semantics (engine.marketdata.databento) drive both books, so this
    # compares the books, not two interpretations of the file: T and F are prints, the C/M that follows
    # reduces the resting order.
    for index, event in enumerate(iter_mbo_file(DATABENTO_MBO, instrument)):
        apply_mbo_event(fast, event, fast_stats, sequence=fast_sequence)
        apply_mbo_event(reference, event, reference_stats, sequence=reference_sequence)
        assert top(fast) == top(reference), f"top of book differs after record {index}"

    assert fast_stats.refused == reference_stats.refused == {}
    assert state(fast) == state(reference)
    assert len(fast) > 13000
    assert not fast.is_crossed()
