"""L2 (price level) books: the same suite runs against the fast book and the reference."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator

import pytest

from engine.book import BookError, L2Book, ReferenceL2Book
from engine.enums import Side
from engine.instruments import InstrumentRegistry
from engine.marketdata.paths import shared_data_dir

BUY, SELL = Side.BUY, Side.SELL

BINANCE_DEPTH = shared_data_dir() / "hftbacktest" / "examples" / "usdm" / "btcusdt_20240808.gz"


@pytest.fixture(params=[L2Book, ReferenceL2Book], ids=["fast", "reference"])
def book_cls(request):
    return request.param


@pytest.fixture
def book(book_cls):
    return book_cls("BTCUSDT")


def state(book) -> tuple:
    """Everything observable about a book, to compare books or check that a refused operation changed nothing."""
    return (
        book.best_bid,
        book.best_bid_size,
        book.best_ask,
        book.best_ask_size,
        book.depth(),
        book.level_count(BUY),
        book.level_count(SELL),
        book.is_crossed(),
        book.is_locked(),
    )


def two_sided(book) -> None:
    for price, size in ((100, 5), (99, 7), (97, 1)):
        book.apply(BUY, price, size)
    for price, size in ((101, 4), (102, 6), (105, 2)):
        book.apply(SELL, price, size)


def test_new_book_is_empty_on_both_sides(book):
    assert (book.best_bid, book.best_ask, book.best_bid_size, book.best_ask_size) == (None, None, 0, 0)
    assert book.depth(10) == ([], [])
    assert (book.level_count(BUY), book.level_count(SELL)) == (0, 0)
    assert not book.is_crossed()
    assert not book.is_locked()
    assert book.symbol == "BTCUSDT"


def test_highest_bid_and_lowest_ask_are_the_best(book):
    two_sided(book)

    assert (book.best_bid, book.best_bid_size) == (100, 5)
    assert (book.best_ask, book.best_ask_size) == (101, 4)


def test_a_worse_level_does_not_change_the_best(book):
    two_sided(book)

    book.apply(BUY, 98, 9)
    book.apply(SELL, 103, 9)

    assert (book.best_bid, book.best_bid_size) == (100, 5)
    assert (book.best_ask, book.best_ask_size) == (101, 4)


def test_setting_a_level_replaces_its_size_and_updates_the_best_size(book):
    two_sided(book)

    book.apply(BUY, 100, 11)
    book.apply(SELL, 101, 3)

    assert (book.best_bid, book.best_bid_size) == (100, 11)
    assert (book.best_ask, book.best_ask_size) == (101, 3)
    assert book.size_at(BUY, 100) == 11


def test_a_new_level_inside_the_spread_takes_the_top(book):
    book.apply(BUY, 100, 5)
    book.apply(SELL, 104, 4)

    book.apply(BUY, 101, 2)
    book.apply(SELL, 103, 3)

    assert (book.best_bid, book.best_bid_size) == (101, 2)
    assert (book.best_ask, book.best_ask_size) == (103, 3)
    assert book.depth() == ([(101, 2), (100, 5)], [(103, 3), (104, 4)])


def test_deleting_the_best_level_falls_back_to_the_next_best(book):
    two_sided(book)

    book.apply(BUY, 100, 0)
    book.apply(SELL, 101, 0)

    assert (book.best_bid, book.best_bid_size) == (99, 7)
    assert (book.best_ask, book.best_ask_size) == (102, 6)
    assert book.level_count(BUY) == 2


def test_deleting_a_level_below_the_best_leaves_the_best_alone(book):
    two_sided(book)

    book.apply(BUY, 99, 0)
    book.apply(SELL, 105, 0)

    assert (book.best_bid, book.best_ask) == (100, 101)
    assert book.depth() == ([(100, 5), (97, 1)], [(101, 4), (102, 6)])


def test_deleting_the_last_level_empties_the_side(book):
    book.apply(BUY, 100, 5)
    book.apply(SELL, 101, 5)

    book.apply(BUY, 100, 0)
    book.apply(SELL, 101, 0)

    assert (book.best_bid, book.best_bid_size, book.best_ask, book.best_ask_size) == (None, 0, None, 0)
    assert book.depth() == ([], [])


def test_deleting_an_absent_level_does_nothing(book):
    two_sided(book)
    before = state(book)

    book.apply(BUY, 98, 0)
    book.apply(SELL, 100, 0)

    assert state(book) == before


def test_a_deleted_level_can_come_back(book):
    two_sided(book)

    book.apply(BUY, 100, 0)
    book.apply(BUY, 100, 8)

    assert (book.best_bid, book.best_bid_size) == (100, 8)
    assert book.level_count(BUY) == 3


def test_depth_lists_bids_descending_and_asks_ascending_up_to_n_levels(book):
    two_sided(book)

    assert book.depth(2) == ([(100, 5), (99, 7)], [(101, 4), (102, 6)])
    assert book.depth(10) == ([(100, 5), (99, 7), (97, 1)], [(101, 4), (102, 6), (105, 2)])
    assert book.depth() == book.depth(3)
    assert book.depth(0) == ([], [])


def test_size_at_an_absent_level_is_zero(book):
    two_sided(book)

    assert book.size_at(BUY, 98) == 0
    assert book.size_at(SELL, 100) == 0
    assert book.size_at(SELL, 102) == 6


def test_a_bid_above_the_ask_is_a_crossed_book(book):
    two_sided(book)

    book.apply(BUY, 103, 1)

    assert book.is_crossed()
    assert not book.is_locked()
    assert (book.best_bid, book.best_ask) == (103, 101)


def test_a_bid_at_the_ask_is_a_locked_book(book):
    two_sided(book)

    book.apply(SELL, 100, 1)

    assert book.is_locked()
    assert not book.is_crossed()


def test_one_sided_book_is_neither_crossed_nor_locked(book):
    book.apply(BUY, 100, 1)

    assert not book.is_crossed()
    assert not book.is_locked()


def test_snapshot_replaces_the_whole_book(book):
    two_sided(book)

    book.load_snapshot([(90, 1), (92, 3), (91, 0)], iter([(95, 2), (94, 4)]))

    assert book.depth() == ([(92, 3), (90, 1)], [(94, 4), (95, 2)])
    assert (book.best_bid, book.best_bid_size, book.best_ask, book.best_ask_size) == (92, 3, 94, 4)


def test_snapshot_levels_apply_in_order_so_a_later_entry_wins(book):
    book.load_snapshot([(90, 1), (90, 4)], [(95, 2), (95, 0)])

    assert book.depth() == ([(90, 4)], [])
    assert book.best_ask is None


def test_empty_snapshot_empties_the_book(book):
    two_sided(book)

    book.load_snapshot([], [])

    assert state(book) == state(type(book)())


def test_clear_empties_the_book_and_it_can_be_reused(book):
    two_sided(book)

    book.clear()
    book.apply(SELL, 50, 1)

    assert book.depth() == ([], [(50, 1)])
    assert (book.best_bid, book.best_ask, book.best_ask_size) == (None, 50, 1)


def test_apply_deltas_applies_each_delta_in_order(book):
    two_sided(book)

    book.apply_deltas(((BUY, 100, 0), (BUY, 98, 2), (SELL, 101, 9), (BUY, 98, 3)))

    assert book.depth(2) == ([(99, 7), (98, 3)], [(101, 9), (102, 6)])
    assert (book.best_bid, book.best_ask_size) == (99, 9)


def test_apply_deltas_stops_at_a_bad_delta_keeping_the_ones_before(book):
    two_sided(book)

    with pytest.raises(BookError) as raised:
        book.apply_deltas([(BUY, 100, 0), (0, 98, 2), (SELL, 101, 0)])

    assert raised.value.code == "BOOK_BAD_SIDE"
    assert (book.best_bid, book.best_ask) == (99, 101)


def test_a_plain_int_side_works_like_the_enum(book):
    book.apply(1, 100, 5)
    book.apply(-1, 101, 5)

    assert (book.best_bid, book.best_ask) == (100, 101)
    assert book.size_at(Side.BUY, 100) == book.size_at(1, 100) == 5


def test_churn_deep_in_the_book_keeps_the_best_right(book):
    # Many levels appear and vanish below the top, then the top levels are removed one by one: the fast
    # book's lazily cleaned heap must still find each next best.
    for price in range(1000, 1200):
        book.apply(BUY, price, 1)
        book.apply(SELL, price + 500, 1)
    for _ in range(3):
        for price in range(1000, 1150):
            book.apply(BUY, price, 0)
            book.apply(SELL, price + 550, 0)
        for price in range(1000, 1150):
            book.apply(BUY, price, 2)
            book.apply(SELL, price + 550, 2)

    for price in range(1199, 1100, -1):
        book.apply(BUY, price, 0)
    for price in range(1500, 1600):
        book.apply(SELL, price, 0)

    assert (book.best_bid, book.best_bid_size) == (1100, 2)
    assert (book.best_ask, book.best_ask_size) == (1600, 2)
    assert book.level_count(BUY) == 101
    assert book.level_count(SELL) == 100


def test_every_level_is_found_again_when_the_levels_above_it_are_deleted(book):
    # Levels arrive worst-first, so none of them is the best when added; the fast book's heap is rebuilt
    # several times on the way. Peeling the top off one level at a time must visit every level in order.
    for offset in range(300):
        book.apply(BUY, 1000 - offset, offset + 1)
        book.apply(SELL, 2000 + offset, offset + 1)
    seen_bids, seen_asks = [], []

    for _ in range(300):
        seen_bids.append((book.best_bid, book.best_bid_size))
        seen_asks.append((book.best_ask, book.best_ask_size))
        book.apply(BUY, book.best_bid, 0)
        book.apply(SELL, book.best_ask, 0)

    assert seen_bids == [(1000 - offset, offset + 1) for offset in range(300)]
    assert seen_asks == [(2000 + offset, offset + 1) for offset in range(300)]
    assert (book.best_bid, book.best_ask) == (None, None)


@pytest.mark.parametrize(
    ("side", "price", "size", "code"),
    [
        (0, 100, 5, "BOOK_BAD_SIDE"),
        (2, 100, 5, "BOOK_BAD_SIDE"),
        (0, -1, -1, "BOOK_BAD_SIDE"),
        (BUY, -1, 5, "BOOK_BAD_PRICE"),
        (SELL, -1, 5, "BOOK_BAD_PRICE"),
        (BUY, -1, 0, "BOOK_BAD_PRICE"),
        (SELL, -5, 0, "BOOK_BAD_PRICE"),
        (BUY, -1, -1, "BOOK_BAD_PRICE"),
        (BUY, 100, -1, "BOOK_BAD_SIZE"),
        (SELL, 101, -3, "BOOK_BAD_SIZE"),
        (SELL, 200, -3, "BOOK_BAD_SIZE"),
    ],
)
def test_a_bad_update_is_refused_with_a_code_and_changes_nothing(book, side, price, size, code):
    two_sided(book)
    before = state(book)

    with pytest.raises(BookError) as raised:
        book.apply(side, price, size)

    assert raised.value.code == code
    assert state(book) == before


@pytest.mark.parametrize(
    ("bids", "asks", "code"),
    [
        ([(90, 1), (-1, 2)], [], "BOOK_BAD_PRICE"),
        ([], [(95, 1), (96, -2)], "BOOK_BAD_SIZE"),
    ],
)
def test_a_bad_snapshot_is_refused_with_a_code_and_changes_nothing(book, bids, asks, code):
    two_sided(book)
    before = state(book)

    with pytest.raises(BookError) as raised:
        book.load_snapshot(bids, asks)

    assert raised.value.code == code
    assert state(book) == before


def test_a_negative_depth_is_refused(book):
    two_sided(book)

    with pytest.raises(BookError) as raised:
        book.depth(-1)

    assert raised.value.code == "BOOK_BAD_DEPTH"


@pytest.mark.parametrize("method", ["size_at", "level_count"])
def test_reads_refuse_a_bad_side(book, method):
    args = (3, 100) if method == "size_at" else (3,)

    with pytest.raises(BookError) as raised:
        getattr(book, method)(*args)

    assert raised.value.code == "BOOK_BAD_SIDE"


def test_book_error_is_an_engine_error():
    from engine.errors import EngineError

    assert issubclass(BookError, EngineError)


# -- the real Binance USD-M depth stream -----------------------------------------------------------


def binance_messages() -> Iterator[tuple[str, list, list]]:
    """("diff" | "snapshot", bids, asks) in file order, prices in ticks and sizes in lots of BTCUSDT."""
    instrument = InstrumentRegistry.from_toml().get("BTCUSDT")
    ticks: dict[str, int] = {}
    lots: dict[str, int] = {}

    def levels(raw: list) -> list[tuple[int, int]]:
        out = []
        for price, qty in raw:
            if price not in ticks:
                ticks[price] = instrument.price_to_ticks(price)
            if qty not in lots:
                lots[qty] = instrument.qty_to_lots(qty)
            out.append((ticks[price], lots[qty]))
        return out

    with gzip.open(BINANCE_DEPTH, "rt") as lines:
        for line in lines:
            payload = line.split(" ", 1)[1]
            if '"depthUpdate"' in payload:
                data = json.loads(payload)["data"]
                yield "diff", levels(data["b"]), levels(data["a"])
            elif '"lastUpdateId"' in payload:
                data = json.loads(payload)
                yield "snapshot", levels(data["bids"]), levels(data["asks"])


@pytest.mark.slow
@pytest.mark.skipif(not BINANCE_DEPTH.exists(), reason=f"shared market data not found at {BINANCE_DEPTH}")
def test_binance_depth_stream_gives_the_same_book_in_the_fast_book_and_the_reference():
    # The fast book is fed both ways: update by update, and a message at a time through apply_deltas.
    fast, batched, reference = L2Book("BTCUSDT"), L2Book("BTCUSDT"), ReferenceL2Book("BTCUSDT")
    messages = 0

    for kind, bids, asks in binance_messages():
        if kind == "snapshot":
            for book in (fast, batched, reference):
                book.load_snapshot(bids, asks)
        else:
            deltas = [(BUY, p, s) for p, s in bids] + [(SELL, p, s) for p, s in asks]
            for side, price, size in deltas:
                fast.apply(side, price, size)
            batched.apply_deltas(deltas)
            reference.apply_deltas(deltas)
        messages += 1
        tops = [(b.best_bid, b.best_bid_size, b.best_ask, b.best_ask_size) for b in (fast, batched, reference)]
        assert tops[0] == tops[1] == tops[2], f"top of book differs after message {messages}"
        if messages % 500 == 0:
            assert fast.depth(50) == batched.depth(50) == reference.depth(50)

    assert messages > 6000
    assert state(fast) == state(batched) == state(reference)
    assert fast.best_bid is not None and fast.best_ask is not None
    assert not fast.is_crossed()
